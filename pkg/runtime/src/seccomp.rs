//! Seccomp profiles for containers: what `seccompProfile` asks for becomes
//! the runtime spec's `linux.seccomp`, which libcontainer loads (through
//! libseccomp) just before the container's process starts.
//!
//! kite's `RuntimeDefault` profile allows every system call except those
//! that reach kernel state a container must not touch, whatever
//! capabilities it was given: loading kernel modules or a new kernel,
//! rebooting, swap, process accounting, I/O port access, the kernel keyring
//! (not namespaced), eBPF and perf events, `userfaultfd`, opening files by
//! handle (a known container escape), tracing other processes' memory, and
//! new namespaces (`unshare`, `setns`, `clone` with `CLONE_NEW*` flags).
//! Those fail with EPERM. `clone3` fails with ENOSYS, since its flags cannot
//! be inspected: C libraries then fall back to `clone`, which can.
//!
//! A `Localhost` profile is an OCI seccomp object (`defaultAction`,
//! `syscalls` with `names`, `action`, `args`: the format Docker's and
//! containerd's profiles share) read from a file.

use serde_json::{Value, json};

/// Whether this build can load seccomp filters (the `seccomp` feature,
/// linked against libseccomp).
pub const SUPPORTED: bool = cfg!(feature = "seccomp");

/// The seccomp profile a container runs under.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Profile {
    /// No filter.
    #[default]
    Unconfined,
    /// kite's default profile (see the module documentation).
    RuntimeDefault,
    /// A profile from a file: the OCI `linux.seccomp` object.
    Localhost(Value),
}

impl Profile {
    /// The `linux.seccomp` object of the runtime spec (`None`: no filter).
    pub fn to_spec(&self) -> Option<Value> {
        match self {
            Self::Unconfined => None,
            Self::RuntimeDefault => Some(runtime_default()),
            Self::Localhost(profile) => Some(profile.clone()),
        }
    }
}

/// Never allowed under `RuntimeDefault`.
const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "swapoff",
    "swapon",
    "unshare",
    "uselib",
    "userfaultfd",
    "vm86",
    "vm86old",
];

/// The namespace flags of `clone(2)`.
const CLONE_NEW: &[u64] = &[
    0x0000_0080, // CLONE_NEWTIME
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// kite's `RuntimeDefault` profile as an OCI `linux.seccomp` object.
pub fn runtime_default() -> Value {
    let mut syscalls = vec![
        json!({"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
    ];
    // One rule per flag: the rules of a syscall are alternatives, and
    // `(flags & flag) == flag` is how a set bit is tested.
    for flag in CLONE_NEW {
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls})
}

/// Reads a `Localhost` profile from `path`, checking it has the shape of one.
pub fn read_localhost(path: &std::path::Path) -> Result<Profile, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("failed to read seccomp profile {}: {e}", path.display()))?;
    let profile: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("seccomp profile {} is not JSON: {e}", path.display()))?;
    if !profile
        .get("defaultAction")
        .is_some_and(|a| a.as_str().is_some_and(|a| a.starts_with("SCMP_ACT_")))
    {
        return Err(format!(
            "seccomp profile {} has no defaultAction such as SCMP_ACT_ERRNO",
            path.display()
        ));
    }
    Ok(Profile::Localhost(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_default_denies_kernel_state_and_new_namespaces() {
        let profile = runtime_default();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
        let rules = profile["syscalls"].as_array().unwrap();
        let denied: Vec<&str> = rules[0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        for name in [
            "kexec_load",
            "init_module",
            "unshare",
            "setns",
            "bpf",
            "keyctl",
        ] {
            assert!(denied.contains(&name), "{name}");
        }
        let user_ns = rules
            .iter()
            .find(|r| r["names"][0] == "clone" && r["args"][0]["value"] == 0x1000_0000)
            .expect("a rule for CLONE_NEWUSER");
        assert_eq!(user_ns["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(Profile::Unconfined.to_spec(), None);
    }

    #[test]
    fn localhost_profiles_must_look_like_one() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}"#).unwrap();
        assert!(matches!(read_localhost(&good), Ok(Profile::Localhost(_))));
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"syscalls":[]}"#).unwrap();
        assert!(
            read_localhost(&bad)
                .unwrap_err()
                .contains("no defaultAction")
        );
        assert!(
            read_localhost(&dir.path().join("missing.json"))
                .unwrap_err()
                .contains("failed to read seccomp profile")
        );
    }
}
