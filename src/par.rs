//! The one thread pool: [`par_map`] runs a function over a slice on scoped threads and
//! returns the results in input order. Builds (one stage per target), layer compression,
//! blob writing and the inspector all go through it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many CPUs this process may use (2 when the system will not say).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Run `f` over `items` on at most `workers` scoped threads, results in input order. Each
/// worker takes the next unclaimed item, so a slow item does not hold up a fixed share of
/// the others. With one worker (or one item) everything runs on the calling thread. A
/// panic in `f` is resumed on the caller.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.min(items.len());
    if workers <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break done };
                        done.push((i, f(item)));
                    }
                })
            })
            .collect();
        in_order(handles)
    })
}

/// [`par_map`] for items still being found: `feed` runs on the calling thread and hands
/// items over one at a time while `workers` threads already work on the earlier ones (a
/// directory walk that waits on the disk overlaps with reading the files it has found).
/// Results come back in the order they were fed. A panic in `f` is resumed on the caller.
pub fn par_map_fed<T: Send, R: Send>(
    workers: usize,
    feed: impl FnOnce(&mut dyn FnMut(T)),
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let (tx, rx) = std::sync::mpsc::channel::<(usize, T)>();
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        // A worker that panicked poisons nothing the others rely on.
                        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((i, item)) = next else { break done };
                        done.push((i, f(item)));
                    }
                })
            })
            .collect();
        let mut n = 0;
        feed(&mut |item| {
            // The receiver lives until the scope ends, so this cannot fail.
            let _ = tx.send((n, item));
            n += 1;
        });
        drop(tx);
        in_order(handles)
    })
}

/// Join the workers (resuming a worker's panic on the caller) and put their `(index,
/// result)` pairs back in index order.
fn in_order<R>(handles: Vec<std::thread::ScopedJoinHandle<'_, Vec<(usize, R)>>>) -> Vec<R> {
    let mut results: Vec<(usize, R)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_with_any_worker_count() {
        let items: Vec<u64> = (0..100).collect();
        for workers in [0, 1, 2, 7, 200] {
            let out = par_map(&items, workers, |x| {
                // Uneven work, so workers finish out of order.
                std::thread::sleep(std::time::Duration::from_micros(100 - x));
                x * 2
            });
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
        assert!(par_map(&[] as &[u8], 4, |x| *x).is_empty());
    }

    #[test]
    fn runs_on_several_threads() {
        let items: Vec<u8> = (0..8).collect();
        let ids = par_map(&items, 4, |_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::thread::current().id()
        });
        let distinct: std::collections::BTreeSet<_> =
            ids.iter().map(|i| format!("{i:?}")).collect();
        assert!(distinct.len() > 1, "{distinct:?}");
    }

    #[test]
    fn fed_items_keep_their_order_while_the_feeder_is_still_feeding() {
        for workers in [0, 1, 3, 16] {
            let started = std::sync::atomic::AtomicUsize::new(0);
            let out = par_map_fed(
                workers,
                |push| {
                    for x in 0..50u64 {
                        push(x);
                        if x == 10 {
                            // Workers start before the feeder is done.
                            let t = std::time::Instant::now();
                            while started.load(Ordering::SeqCst) == 0
                                && t.elapsed() < std::time::Duration::from_secs(10)
                            {
                                std::thread::yield_now();
                            }
                            assert!(started.load(Ordering::SeqCst) > 0);
                        }
                    }
                },
                |x| {
                    started.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_micros(50 - x));
                    x * 2
                },
            );
            assert_eq!(out, (0..50).map(|x| x * 2).collect::<Vec<_>>());
        }
        assert!(par_map_fed(4, |_: &mut dyn FnMut(u8)| {}, |x| x).is_empty());
    }
}
