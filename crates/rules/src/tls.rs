//! `req.ssl_sni`: the server name from a TLS ClientHello in the buffered request bytes
//! (TLS passthrough routing in `tcp-request content`).

/// The SNI host name of a complete ClientHello record at the start of `p`, if any.
pub fn client_hello_sni(p: &[u8]) -> Option<&[u8]> {
    // Record header: type 22 (handshake), version, length.
    if *p.first()? != 22 {
        return None;
    }
    let rec_len = usize::from(u16::from_be_bytes([*p.get(3)?, *p.get(4)?]));
    let hs = p.get(5..5 + rec_len)?;
    // Handshake header: type 1 (ClientHello), 3-byte length.
    if *hs.first()? != 1 {
        return None;
    }
    let mut i = 4 + 2 + 32; // header, client_version, random
    let sid_len = usize::from(*hs.get(i)?);
    i += 1 + sid_len;
    let cs_len = usize::from(u16::from_be_bytes([*hs.get(i)?, *hs.get(i + 1)?]));
    i += 2 + cs_len;
    let comp_len = usize::from(*hs.get(i)?);
    i += 1 + comp_len;
    let ext_total = usize::from(u16::from_be_bytes([*hs.get(i)?, *hs.get(i + 1)?]));
    i += 2;
    let exts = hs.get(i..i + ext_total)?;
    let mut j = 0;
    while j + 4 <= exts.len() {
        let ty = u16::from_be_bytes([*exts.get(j)?, *exts.get(j + 1)?]);
        let len = usize::from(u16::from_be_bytes([*exts.get(j + 2)?, *exts.get(j + 3)?]));
        let body = exts.get(j + 4..j + 4 + len)?;
        if ty == 0 {
            // server_name list: 2-byte list length, then (type 0, 2-byte len, name).
            if *body.get(2)? != 0 {
                return None;
            }
            let nlen = usize::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
            return body.get(5..5 + nlen);
        }
        j += 4 + len;
    }
    None
}

/// HAProxy's `req.ssl_ver`: the ClientHello's version (SSLv3/TLS, e.g. `0x0303`), else the
/// record layer's.
pub fn record_version(p: &[u8]) -> Option<u16> {
    if *p.first()? != 22 {
        return None;
    }
    if *p.get(5)? == 1 {
        return Some(u16::from_be_bytes([*p.get(9)?, *p.get(10)?]));
    }
    Some(u16::from_be_bytes([*p.get(1)?, *p.get(2)?]))
}

/// Handshake message type of the first record (`req.ssl_hello_type`: 1 ClientHello).
pub fn hello_type(p: &[u8]) -> Option<u8> {
    if *p.first()? != 22 {
        return None;
    }
    p.get(5).copied()
}

#[cfg(test)]
pub(crate) fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sn = Vec::new();
    sn.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sn.push(0);
    sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sn.extend_from_slice(name);
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&(sn.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sn);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0u8; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_from_client_hello() {
        let ch = client_hello("api.example.com");
        assert_eq!(client_hello_sni(&ch), Some(&b"api.example.com"[..]));
        assert_eq!(client_hello_sni(&ch[..ch.len() - 3]), None, "truncated");
        assert_eq!(client_hello_sni(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(record_version(&ch), Some(0x0303));
        assert_eq!(hello_type(&ch), Some(1));
        assert_eq!(hello_type(b"GET"), None);
    }
}
