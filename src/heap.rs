//! The process's heap: how glibc's allocator gives freed memory back, set once at startup.
//!
//! A download allocates the same few buffers as the one before it (a 64 KiB read buffer, the
//! response head, the Redis replies) and frees them when it ends. With glibc's defaults the top
//! of a heap is returned to the kernel once 128 KiB of it is free (a threshold that glibc then
//! moves on its own as large blocks come and go, so two runs of the same process can differ), and
//! the next download faults the same pages in and zeroes them again: about a sixth of the CPU of
//! a small download (`docs/benchmarks.md`, "The trim threshold, side by side"). [`tune`] keeps up to
//! [`TRIM_THRESHOLD`] free at the top of a heap instead. Setting it also fixes the size from
//! which a block is its own mapping at glibc's starting 128 KiB (it no longer moves), so the
//! behaviour is the same in every process.
//!
//! What it costs: memory that a burst of downloads took is kept for the next burst (up to
//! [`TRIM_THRESHOLD`] per heap) rather than returned at once, which raises the peak of 256
//! concurrent 10 MiB downloads by about 1.5 MiB (`docs/benchmarks.md`, "The directory 10 MiB
//! c=256 cell's memory"). And a block
//! of 128 KiB or more is mapped and unmapped each time, as in a fresh process, where glibc would
//! have raised that threshold after freeing one (docgate's per-download buffers are 64 KiB; a
//! watermarked PDF's structure, read once per version, is the larger kind). An operator who sets
//! `glibc.malloc.*` in `GLIBC_TUNABLES`, or one of glibc's `MALLOC_*` variables, keeps theirs:
//! [`tune`] then changes nothing.
//! Elsewhere than glibc (musl, macOS) it does nothing.

/// Free bytes kept at the top of a heap before it is returned to the kernel (glibc: 128 KiB).
pub const TRIM_THRESHOLD: usize = 2 << 20;

/// The size from which glibc gives a block a mapping of its own, mapped and faulted in when it is
/// allocated and unmapped when freed: glibc's starting value, which setting [`TRIM_THRESHOLD`]
/// keeps fixed. Buffers allocated for every download stay below it.
pub const MAPPED_FROM: usize = 128 * 1024;

/// What [`tune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// [`TRIM_THRESHOLD`] is set.
    Set,
    /// The environment sets the allocator's parameters: the operator's stand.
    Operator,
    /// Not glibc's allocator, or it refused the settings.
    Unchanged,
}

/// Sets the allocator's trim threshold, once, before the runtime starts its threads.
pub fn tune() -> Tuning {
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    if operator_tuned(std::env::var("GLIBC_TUNABLES").ok().as_deref(), names) {
        return Tuning::Operator;
    }
    set()
}

/// Whether the environment sets any of the allocator's parameters: in `GLIBC_TUNABLES`
/// (`name=value` pairs joined by `:`), or by glibc's older variables (`MALLOC_TRIM_THRESHOLD_`,
/// `MALLOC_ARENA_MAX`, ...).
fn operator_tuned(tunables: Option<&str>, mut names: impl Iterator<Item = String>) -> bool {
    tunables.is_some_and(|t| t.split(':').any(|pair| pair.starts_with("glibc.malloc.")))
        || names.any(|name| name.starts_with("MALLOC_"))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // One of the crate's two exceptions (`sched` is the other): no safe binding.
fn set() -> Tuning {
    let Ok(trim) = libc::c_int::try_from(TRIM_THRESHOLD) else {
        return Tuning::Unchanged;
    };
    // SAFETY: `mallopt` only sets one of the allocator's parameters from a plain integer; glibc
    // takes its own lock for it.
    let set = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, trim) };
    if set == 1 {
        Tuning::Set
    } else {
        Tuning::Unchanged
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set() -> Tuning {
    Tuning::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> impl Iterator<Item = String> {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn an_operators_allocator_settings_are_kept() {
        let plain = || names(&["PATH", "HOME", "DOCGATE_REDIS_URL"]);
        assert!(!operator_tuned(None, plain()));
        assert!(!operator_tuned(Some(""), plain()));
        assert!(!operator_tuned(
            Some("glibc.rtld.nns=2:glibc.pthread.rseq=0"),
            plain()
        ));
        assert!(operator_tuned(
            Some("glibc.malloc.trim_threshold=0"),
            plain()
        ));
        assert!(operator_tuned(
            Some("glibc.rtld.nns=2:glibc.malloc.arena_max=2"),
            plain()
        ));
        assert!(operator_tuned(
            None,
            names(&["PATH", "MALLOC_TRIM_THRESHOLD_"])
        ));
        assert!(operator_tuned(None, names(&["MALLOC_ARENA_MAX"])));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_thresholds() {
        // `mallopt` answers 0 for a parameter or value it refuses.
        assert_eq!(set(), Tuning::Set);
    }
}
