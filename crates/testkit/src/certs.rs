//! Test certificates made with the `openssl` command: a CA per test, then server and
//! client certificates signed by it (EC P-256, valid two days), and OCSP responses.
//!
//! The CA's working files (keys, CSRs, serials, the OCSP index) stay in the CA's own
//! directory, so a PEM written elsewhere can share a `crt DIR` with nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::tools::run_bounded;

/// How long one `openssl` command may run.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `openssl ARGS` in `dir`; panics with its stderr on failure (a broken test setup).
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new("openssl").current_dir(dir).args(args),
        OPENSSL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed test CA in its own directory.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM), for `ca-file` and clients' `--cacert`.
    pub cert: PathBuf,
    key: PathBuf,
}

/// A certificate issued by a `TestCa`.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate then key in one PEM, as HAProxy's `crt` wants.
    pub pem: PathBuf,
    /// The certificate alone.
    pub crt: PathBuf,
    /// The key alone.
    pub key: PathBuf,
}

impl TestCa {
    /// Creates `dir` (if needed) and a CA named `CN=<cn>` in it.
    pub fn new(dir: &Path, cn: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let subj = format!("/CN={cn}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &subj,
            ],
        );
        TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        }
    }

    /// An intermediate CA `CN=<cn>` signed by this one, in its own directory `dir`; its
    /// `chain` file holds its certificate, to append to the PEMs it issues.
    pub fn intermediate(&self, dir: &Path, cn: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let pem = dir.join("issued.pem");
        let issued = self.issue(
            cn,
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n",
            &pem,
        );
        std::fs::copy(&issued.crt, dir.join("ca.pem")).unwrap_or_else(|e| panic!("ca.pem: {e}"));
        std::fs::copy(&issued.key, dir.join("ca.key")).unwrap_or_else(|e| panic!("ca.key: {e}"));
        TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        }
    }

    /// Appends this CA's certificate to `issued`'s PEM and certificate files (a chain sent
    /// by whoever presents them).
    pub fn append_chain(&self, issued: &Issued) {
        let me = std::fs::read(&self.cert).unwrap_or_else(|e| panic!("ca: {e}"));
        for path in [&issued.pem, &issued.crt] {
            let mut data =
                std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            data.extend_from_slice(&me);
            std::fs::write(path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    /// A server certificate for `name` (CN and DNS SAN), its PEM written to `pem`.
    pub fn server(&self, name: &str, pem: &Path) -> Issued {
        self.issue(
            name,
            &format!("subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"),
            pem,
        )
    }

    /// A client certificate `CN=<cn>` (extended key usage clientAuth), its PEM written to `pem`.
    pub fn client(&self, cn: &str, pem: &Path) -> Issued {
        self.issue(cn, "extendedKeyUsage=clientAuth\n", pem)
    }

    /// A client certificate with a full subject (`/C=FR/O=Example/CN=name`, OpenSSL's
    /// `-subj` form), its PEM written to `pem`.
    pub fn client_with_subject(&self, subject: &str, pem: &Path) -> Issued {
        self.issue_subject(subject, "extendedKeyUsage=clientAuth\n", pem)
    }

    /// Like `client`, with an RSA 2048 key (files named `<cn>.rsa.*`).
    pub fn client_rsa(&self, cn: &str, pem: &Path) -> Issued {
        self.issue_key(
            &format!("/CN={cn}"),
            "extendedKeyUsage=clientAuth\n",
            pem,
            true,
        )
    }

    fn issue(&self, cn: &str, ext: &str, pem: &Path) -> Issued {
        self.issue_subject(&format!("/CN={cn}"), ext, pem)
    }

    fn issue_subject(&self, subj: &str, ext: &str, pem: &Path) -> Issued {
        self.issue_key(subj, ext, pem, false)
    }

    /// Like `server`, with an RSA 2048 key (for `ECDHE-RSA-*` ciphers); its working files
    /// are named `<name>.rsa.*`, so it can sit beside an EC certificate for the same name.
    pub fn server_rsa(&self, name: &str, pem: &Path) -> Issued {
        self.issue_key(
            &format!("/CN={name}"),
            &format!("subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"),
            pem,
            true,
        )
    }

    fn issue_key(&self, subj: &str, ext: &str, pem: &Path, rsa: bool) -> Issued {
        let base = subj
            .trim_start_matches('/')
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_")
            + if rsa { ".rsa" } else { "" };
        let (key, csr, crt, extf) = (
            format!("{base}.key"),
            format!("{base}.csr"),
            format!("{base}.crt"),
            format!("{base}.ext"),
        );
        std::fs::write(self.dir.join(&extf), ext).unwrap_or_else(|e| panic!("{extf}: {e}"));
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                if rsa { "rsa" } else { "ec" },
                "-pkeyopt",
                if rsa {
                    "rsa_keygen_bits:2048"
                } else {
                    "ec_paramgen_curve:P-256"
                },
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subj,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extf,
                "-out",
                &crt,
            ],
        );
        let read = |p: &str| std::fs::read(self.dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut both = read(&crt);
        both.extend(read(&key));
        std::fs::write(pem, both).unwrap_or_else(|e| panic!("{}: {e}", pem.display()));
        Issued {
            pem: pem.to_path_buf(),
            crt: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }

    /// A DER OCSP response signed by the CA saying `cert` is good, written to `out`
    /// (HAProxy's `<crt>.ocsp`). Made the way a responder would: a request, then
    /// `openssl ocsp` answering it from an index that lists the certificate as valid.
    pub fn ocsp_good(&self, cert: &Issued, out: &Path) {
        let crt = cert.crt.to_string_lossy().into_owned();
        let (serial, subject) = self.serial_and_subject(cert);
        // index.txt: status, expiry, revocation date, serial, file, subject (tab separated).
        let index = format!("V\t301231235959Z\t\t{serial}\tunknown\t{subject}\n");
        std::fs::write(self.dir.join("index.txt"), index).unwrap_or_else(|e| panic!("index: {e}"));
        let ca = self.cert.to_string_lossy().into_owned();
        let key = self.key.to_string_lossy().into_owned();
        openssl(
            &self.dir,
            &[
                "ocsp",
                "-issuer",
                &ca,
                "-cert",
                &crt,
                "-no_nonce",
                "-reqout",
                "ocsp.req",
            ],
        );
        let out = out.to_string_lossy().into_owned();
        openssl(
            &self.dir,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-rsigner",
                &ca,
                "-rkey",
                &key,
                "-CA",
                &ca,
                "-reqin",
                "ocsp.req",
                "-respout",
                &out,
                "-ndays",
                "1",
            ],
        );
    }

    /// A PEM CRL signed by the CA revoking `revoked`, written to `out` (for `crl-file`).
    pub fn crl(&self, revoked: &[&Issued], out: &Path) {
        let mut index = String::new();
        for cert in revoked {
            let (serial, subject) = self.serial_and_subject(cert);
            index.push_str(&format!(
                "R\t301231235959Z\t240101000000Z\t{serial}\tunknown\t{subject}\n"
            ));
        }
        let write = |name: &str, text: &str| {
            std::fs::write(self.dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        write("crl-index.txt", &index);
        write("crlnumber", "01\n");
        write(
            "crl.cnf",
            "[ca]\ndefault_ca = test\n[test]\ndatabase = crl-index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 2\n",
        );
        let out = out.to_string_lossy().into_owned();
        openssl(
            &self.dir,
            &[
                "ca", "-gencrl", "-config", "crl.cnf", "-keyfile", "ca.key", "-cert", "ca.pem",
                "-out", &out,
            ],
        );
    }

    /// The serial (hex) and subject (OpenSSL's index form) of an issued certificate.
    fn serial_and_subject(&self, cert: &Issued) -> (String, String) {
        let crt = cert.crt.to_string_lossy().into_owned();
        let serial = openssl(&self.dir, &["x509", "-in", &crt, "-noout", "-serial"]);
        let subject = openssl(
            &self.dir,
            &[
                "x509", "-in", &crt, "-noout", "-subject", "-nameopt", "compat",
            ],
        );
        (
            serial.trim().trim_start_matches("serial=").to_owned(),
            subject.trim().trim_start_matches("subject=").to_owned(),
        )
    }
}
