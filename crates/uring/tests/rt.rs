//! The shard run loop (`rt`): tasks, join handles, timers, cross-thread channels and wakers,
//! and that an idle loop sleeps instead of spinning.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use ringlb_uring::{rt, Ring};

fn run<T: Send + 'static, Fut: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce(Ring) -> Fut + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let ring = Ring::new(64, 4, 1024).expect("ring");
        rt::block_on(&ring, f(ring.clone())).expect("run loop")
    })
    .join()
    .expect("join")
}

#[test]
fn spawned_tasks_run_and_join_handles_give_their_output() {
    let out = run(|_| async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let inner = rt::spawn(async move {
            l.borrow_mut().push("outer");
            let l2 = l.clone();
            rt::spawn(async move { l2.borrow_mut().push("nested") }).await;
            7
        });
        let v = inner.await;
        let got = log.borrow().clone();
        (v, got)
    });
    assert_eq!(out.0, 7);
    assert_eq!(out.1, vec!["outer", "nested"]);
}

#[test]
fn timers_fire_in_deadline_order_and_not_early() {
    let (order, waited) = run(|_| async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        let mut handles = Vec::new();
        for ms in [60u64, 20, 40] {
            let o = order.clone();
            handles.push(rt::spawn(async move {
                rt::sleep(Duration::from_millis(ms)).await;
                o.borrow_mut().push(ms);
            }));
        }
        for h in handles {
            h.await;
        }
        let got = order.borrow().clone();
        (got, start.elapsed())
    });
    assert_eq!(order, vec![20, 40, 60]);
    assert!(waited >= Duration::from_millis(60), "waited {waited:?}");
}

#[test]
fn a_dropped_sleep_leaves_no_timer_behind() {
    let loops = run(|_| async {
        // A long timer dropped at once: the loop must not wake for it, nor keep it.
        let early = futures_lite::future::poll_once(rt::sleep(Duration::from_millis(30))).await;
        assert!(early.is_none(), "a 30 ms sleep finished at its first poll");
        let before = rt::stats().loops;
        rt::sleep(Duration::from_millis(100)).await;
        rt::stats().loops - before
    });
    assert!(loops <= 4, "an idle loop woke {loops} times in 100 ms");
}

#[test]
fn a_message_from_another_thread_wakes_a_sleeping_shard() {
    let (tx, rx) = rt::channel::unbounded::<u32>();
    let sender = std::thread::spawn(move || {
        for i in 0..50 {
            // Sleeps between messages so the shard parks in the ring each time.
            std::thread::sleep(Duration::from_millis(2));
            tx.try_send(i).unwrap();
        }
        // `tx` drops here: the receiver sees the end.
    });
    let got = run(move |_| async move {
        let mut got = Vec::new();
        while let Some(v) = rx.recv().await {
            got.push(v);
        }
        got
    });
    sender.join().unwrap();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[test]
fn a_bounded_channel_holds_the_sender_until_there_is_room() {
    let (tx, rx) = rt::channel::bounded::<u32>(2);
    let consumer = std::thread::spawn(move || {
        run(move |_| async move {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
                // A slow receiver: the producer must wait, not drop.
                rt::sleep(Duration::from_millis(1)).await;
            }
            got
        })
    });
    run(move |_| async move {
        for i in 0..20 {
            tx.send(i).await.unwrap();
        }
    });
    assert_eq!(consumer.join().unwrap(), (0..20).collect::<Vec<_>>());
}

#[test]
fn a_waker_used_from_another_thread_wakes_its_task() {
    let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let waker_thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(w) = s.lock().unwrap().take() {
                std::thread::sleep(Duration::from_millis(20));
                w.wake();
                return;
            }
            assert!(Instant::now() < deadline, "the task never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let woken = run(move |_| async move {
        let mut parked = false;
        std::future::poll_fn(|cx| {
            if parked {
                return Poll::Ready(true);
            }
            parked = true;
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    });
    waker_thread.join().unwrap();
    assert!(woken);
}

#[test]
fn tasks_left_running_are_dropped_when_the_main_future_ends() {
    struct Flag(Arc<Mutex<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let dropped = Arc::new(Mutex::new(false));
    let d = dropped.clone();
    run(move |_| async move {
        rt::spawn(async move {
            let _flag = Flag(d);
            rt::sleep(Duration::from_secs(3600)).await;
        })
        .detach();
        rt::yield_now().await;
    });
    assert!(*dropped.lock().unwrap());
}
