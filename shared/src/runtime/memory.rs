//! How much memory this process may still take: what bounds the Winograd rewrite's kernels on a
//! board short of it ([`super::winograd_op`]). A box that swaps models holds the running one while
//! the next loads, and on Linux an allocation past the memory there is does not fail: the
//! out-of-memory killer ends the process (or another) instead.

use std::path::{Path, PathBuf};

/// The bytes this process may still allocate without pushing others out: the kernel's estimate
/// of memory available without swapping (`MemAvailable`), or less when the process's cgroup or
/// one above it (a container, a systemd `MemoryMax` on the service or its slice) allows less.
/// `None` where neither is known (not Linux). An address-space cap (`ulimit -v`) is not counted.
pub fn available() -> Option<u64> {
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let system = read(Path::new("/proc/meminfo")).and_then(|text| mem_available(&text));
    let cgroup = read(Path::new("/proc/self/cgroup")).and_then(|text| {
        cgroups(&text)
            .into_iter()
            .filter_map(|group| {
                let file = |name: &str| read(&group.dir.join(name));
                cgroup_room(&file(group.files.limit)?, &file(group.files.usage)?, &file("memory.stat")?, group.files)
            })
            .min()
    });
    system.into_iter().chain(cgroup).min()
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The names a memory cgroup's files have in one version of the interface.
#[derive(Debug, PartialEq)]
struct Files {
    limit: &'static str,
    usage: &'static str,
    /// The `memory.stat` entry of page cache the kernel reclaims first: not in use.
    inactive_file: &'static str,
    /// The `memory.stat` entry of the smallest limit on the way up to the root (v1 only: in v2
    /// each ancestor is read in turn).
    hierarchical_limit: Option<&'static str>,
}

const V2: Files = Files { limit: "memory.max", usage: "memory.current", inactive_file: "inactive_file", hierarchical_limit: None };
const V1: Files = Files {
    limit: "memory.limit_in_bytes",
    usage: "memory.usage_in_bytes",
    inactive_file: "total_inactive_file",
    hierarchical_limit: Some("hierarchical_memory_limit"),
};

/// A directory where this process's memory cgroup may be read.
#[derive(Debug, PartialEq)]
struct Cgroup {
    dir: PathBuf,
    files: &'static Files,
}

/// Where this process's memory cgroup and those above it may be read, from `/proc/self/cgroup`:
/// v2 ("0::/path": the path and each of its parents) or v1 ("N:memory:/path": the path), each
/// also at the mount's root (a container sees its own cgroup there). Those not there are skipped.
fn cgroups(proc_self_cgroup: &str) -> Vec<Cgroup> {
    let mut found = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let (root, files) = match controllers {
            "" => ("/sys/fs/cgroup", &V2),
            c if c.split(',').any(|c| c == "memory") => ("/sys/fs/cgroup/memory", &V1),
            _ => continue,
        };
        let leaf = match path.trim_matches('/') {
            "" => PathBuf::from(root),
            relative => Path::new(root).join(relative),
        };
        let mut dirs: Vec<PathBuf> = match files.hierarchical_limit {
            Some(_) => vec![leaf.clone()],
            None => leaf.ancestors().take_while(|dir| dir.starts_with(root)).map(Path::to_path_buf).collect(),
        };
        if !dirs.iter().any(|dir| dir == Path::new(root)) {
            dirs.push(PathBuf::from(root));
        }
        found.extend(dirs.into_iter().map(|dir| Cgroup { dir, files }));
    }
    found
}

/// What a cgroup's limit leaves beyond what it uses, page cache not in use left out (as
/// `docker stats` counts); `None` without a limit ("max" in v2; v1 says a number near 2^63,
/// which the smaller `MemAvailable` then outweighs).
fn cgroup_room(limit: &str, usage: &str, stat: &str, files: &Files) -> Option<u64> {
    let entry = |name: &str| stat.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok());
    let own: u64 = limit.trim().parse().ok()?;
    let limit = files.hierarchical_limit.and_then(entry).map_or(own, |above| above.min(own));
    let usage: u64 = usage.trim().parse().ok()?;
    let cache = entry(files.inactive_file).unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(cache)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:        1918036 kB\nMemFree:          204532 kB\nMemAvailable:     812340 kB\nBuffers:  1 kB\n";
        assert_eq!(mem_available(meminfo), Some(812_340 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None, "a kernel older than 3.14 has no MemAvailable");
        assert_eq!(mem_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn a_cgroup_limit_leaves_its_room_past_what_it_uses() {
        let stat = "anon 300000000\nfile 200000000\ninactive_file 100663296\nactive_file 1\n";
        assert_eq!(cgroup_room("536870912\n", "503316480\n", stat, &V2), Some(128 << 20), "512 MiB less 480 less 96 of cache");
        assert_eq!(cgroup_room("536870912\n", "600000000\n", "", &V2), Some(0), "over its limit already");
        assert_eq!(cgroup_room("max\n", "402653184\n", stat, &V2), None);
        let v1 = "cache 5\ninactive_file 1\nhierarchical_memory_limit 9223372036854771712\ntotal_inactive_file 4096\n";
        assert_eq!(cgroup_room("1048576\n", "8192\n", v1, &V1), Some(1048576 - 4096));
        let v1_slice_limited = "hierarchical_memory_limit 65536\ntotal_inactive_file 0\n";
        assert_eq!(cgroup_room("9223372036854771712\n", "8192\n", v1_slice_limited, &V1), Some(65536 - 8192), "a limit above it counts");
    }

    #[test]
    fn the_cgroup_is_looked_for_where_its_version_keeps_it() {
        let dirs = |found: &[Cgroup]| found.iter().map(|c| c.dir.to_str().unwrap().to_string()).collect::<Vec<_>>();
        let v2 = cgroups("0::/system.slice/flowercam-edge.service\n");
        assert_eq!(
            dirs(&v2),
            ["/sys/fs/cgroup/system.slice/flowercam-edge.service", "/sys/fs/cgroup/system.slice", "/sys/fs/cgroup"],
            "the service, its slice (a MemoryMax there counts too), the root"
        );
        assert!(v2.iter().all(|c| c.files == &V2));
        assert_eq!(dirs(&cgroups("0::/\n")), ["/sys/fs/cgroup"]);
        let v1 = cgroups("5:cpuacct,cpu:/x\n4:memory:/docker/abc\n0::/\n");
        assert_eq!(v1[0], Cgroup { dir: "/sys/fs/cgroup/memory/docker/abc".into(), files: &V1 });
        assert_eq!(v1[1], Cgroup { dir: "/sys/fs/cgroup/memory".into(), files: &V1 });
        assert_eq!(dirs(&v1[2..]), ["/sys/fs/cgroup"], "then v2's unified line");
        assert!(cgroups("garbage\n").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_says_how_much_is_available() {
        let bytes = available().expect("Linux has /proc/meminfo");
        assert!(bytes > 0, "{bytes}");
    }
}
