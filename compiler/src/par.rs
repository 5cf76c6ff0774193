//! Doing independent work on all cores, in order.

/// `items` mapped through `f`, in order; on all cores when there are at least two threads' worth
/// (`min_per_thread` each), else on this thread. The result is the same either way.
pub(crate) fn map_in_order<T: Send, R: Send>(
    mut items: Vec<T>,
    min_per_thread: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if threads < 2 || items.len() < 2 * min_per_thread {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks = Vec::with_capacity(threads);
    while items.len() > per {
        let rest = items.split_off(per);
        chunks.push(std::mem::replace(&mut items, rest));
    }
    chunks.push(items);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| scope.spawn(move || c.into_iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_whatever_the_threads() {
        let items: Vec<u32> = (0..10_000).collect();
        let doubled = map_in_order(items.clone(), 16, |x| x * 2);
        assert_eq!(doubled, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(map_in_order(vec![1, 2, 3], 16, |x| x + 1), vec![2, 3, 4]);
        assert!(map_in_order(Vec::<u32>::new(), 1, |x| x).is_empty());
    }
}
