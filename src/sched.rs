//! How the kernel schedules the admin listener's thread: it asks for a short time slice, so that
//! a liveness probe arriving while downloads keep every core busy is answered at once.
//!
//! Linux's scheduler (EEVDF, 6.6 and later) gives a thread that wakes up a virtual deadline one
//! time slice ahead, and from 6.12 on lets a thread ask for a shorter slice than the default
//! (`sched_setattr` with `sched_runtime` under the normal policy: no privilege needed, the thread's
//! share of the CPU is unchanged). A thread with a short slice has the earliest deadline when it
//! wakes, so it preempts a busy one instead of waiting for its turn. The admin thread answers a
//! probe in well under its slice; without one, under 1,024 concurrent downloads, a probe now and
//! then waited several milliseconds behind the serving workers (`docs/profiles/overload.md`).
//!
//! [`prefer_short_slices`] changes only the calling thread, only when it runs under the normal
//! policy (an operator's `SCHED_BATCH`, `SCHED_IDLE` or real-time policy is kept), and keeps its
//! niceness. On older kernels the call succeeds and changes nothing; where it is refused (a
//! seccomp filter), the thread keeps the default. Elsewhere than Linux it does nothing.

/// The slice the admin thread asks for: the shortest the kernel grants (0.1 ms; the default is
/// 0.7 ms per log2 of the CPU count, plus one).
pub const SHORT_SLICE_NS: u64 = 100_000;

/// What [`prefer_short_slices`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice {
    /// The thread asked for [`SHORT_SLICE_NS`], and the kernel reports it (6.12 and later).
    Short,
    /// The kernel took the request but does not keep per-thread slices (before 6.12).
    Unsupported,
    /// The thread runs under another policy than the normal one: left as it is.
    OtherPolicy,
    /// The kernel refused the call (its error number), or this is not Linux.
    Refused(i32),
}

/// Asks the kernel to schedule the calling thread with [`SHORT_SLICE_NS`] slices.
pub fn prefer_short_slices() -> Slice {
    imp::prefer_short_slices()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // One of the crate's two exceptions (`heap` is the other): no safe binding.
mod imp {
    use super::{SHORT_SLICE_NS, Slice};

    pub(super) fn prefer_short_slices() -> Slice {
        let mut attr = match attributes() {
            Ok(attr) => attr,
            Err(errno) => return Slice::Refused(errno),
        };
        if i64::from(attr.sched_policy) != i64::from(libc::SCHED_OTHER) {
            return Slice::OtherPolicy;
        }
        // Everything else as it was (policy, niceness, flags); the slice is `sched_runtime`.
        attr.sched_runtime = SHORT_SLICE_NS;
        if let Err(errno) = set_attributes(&attr) {
            return Slice::Refused(errno);
        }
        match attributes() {
            Ok(now) if now.sched_runtime == SHORT_SLICE_NS => Slice::Short,
            Ok(_) => Slice::Unsupported,
            Err(errno) => Slice::Refused(errno),
        }
    }

    /// The calling thread's scheduling attributes.
    pub(super) fn attributes() -> Result<libc::sched_attr, i32> {
        let size = size_of::<libc::sched_attr>();
        // SAFETY: all-zero bytes are a valid `sched_attr` (plain integers).
        let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
        // SAFETY: `attr` is a live, writable `sched_attr` of `size` bytes; the kernel writes at
        // most `size` bytes into it. Thread 0 is the calling thread.
        let done = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &raw mut attr,
                libc::c_uint::try_from(size).unwrap_or(0),
                0,
            )
        };
        if done == 0 { Ok(attr) } else { Err(errno()) }
    }

    /// Sets the calling thread's scheduling attributes.
    pub(super) fn set_attributes(attr: &libc::sched_attr) -> Result<(), i32> {
        let mut attr = *attr;
        attr.size = u32::try_from(size_of::<libc::sched_attr>()).unwrap_or(0);
        // SAFETY: `attr` is a live `sched_attr` whose `size` field is its size; the kernel only
        // reads it. Thread 0 is the calling thread.
        let done = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) };
        if done == 0 { Ok(()) } else { Err(errno()) }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Slice;

    pub(super) fn prefer_short_slices() -> Slice {
        Slice::Refused(0)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own, so the test's scheduling changes stay there.
    fn on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn the_thread_gets_the_short_slice_and_keeps_its_niceness() {
        let (slice, before, after) = on_a_thread(|| {
            // A thread an operator started at niceness 5 (raising it needs no privilege).
            let mut nice = imp::attributes().unwrap();
            nice.sched_nice = 5;
            imp::set_attributes(&nice).unwrap();
            let before = imp::attributes().unwrap();
            (prefer_short_slices(), before, imp::attributes().unwrap())
        });
        assert_eq!(after.sched_nice, 5, "niceness kept");
        assert_eq!(after.sched_policy, before.sched_policy, "policy kept");
        match slice {
            Slice::Short => assert_eq!(after.sched_runtime, SHORT_SLICE_NS),
            // A kernel before 6.12: nothing changed.
            Slice::Unsupported => assert_eq!(after.sched_runtime, before.sched_runtime),
            other => panic!("the normal policy, on Linux: {other:?}"),
        }
    }

    #[test]
    fn another_policy_is_left_as_it_is() {
        let (slice, after) = on_a_thread(|| {
            let mut batch = imp::attributes().unwrap();
            // Needs no privilege.
            batch.sched_policy = u32::try_from(libc::SCHED_BATCH).unwrap();
            imp::set_attributes(&batch).unwrap();
            (prefer_short_slices(), imp::attributes().unwrap())
        });
        assert_eq!(slice, Slice::OtherPolicy);
        assert_eq!(i64::from(after.sched_policy), i64::from(libc::SCHED_BATCH));
        assert_ne!(after.sched_runtime, SHORT_SLICE_NS);
    }

    #[test]
    fn other_threads_keep_the_default() {
        let default = on_a_thread(|| imp::attributes().unwrap().sched_runtime);
        on_a_thread(prefer_short_slices);
        assert_eq!(
            on_a_thread(|| imp::attributes().unwrap().sched_runtime),
            default
        );
        assert_ne!(default, SHORT_SLICE_NS);
    }
}
