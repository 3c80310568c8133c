//! Resource quantities as the scheduler counts them: what a pod requests and
//! what a node can still give.
//!
//! Quantities arrive as Kubernetes strings (`250m`, `1Gi`, `2`, `1e3`); they are
//! parsed exactly (integer arithmetic, rounding up as `Quantity.Value()` does)
//! because a node that is 1 byte short must reject the pod.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// CPU a container without a CPU request counts as when *scoring* (not filtering),
/// so that request-less pods still spread out: 0.1 core, as kube-scheduler.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts as when scoring: 200 MiB.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A set of resource amounts: CPU in millicores, the rest in units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Number of pods (only meaningful for allocatable).
    pub pods: i64,
    /// Extended and other scalar resources (`example.com/gpu`, `hugepages-2Mi`).
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Adds one `ResourceList` (name → quantity) to these amounts.
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, quantity) in list {
            match name.as_str() {
                "cpu" => self.milli_cpu = self.milli_cpu.saturating_add(milli_value(quantity)),
                "memory" => self.memory = self.memory.saturating_add(value(quantity)),
                "ephemeral-storage" => {
                    self.ephemeral_storage = self.ephemeral_storage.saturating_add(value(quantity))
                }
                "pods" => self.pods = self.pods.saturating_add(value(quantity)),
                other if is_scalar(other) => {
                    let entry = self.scalar.entry(other.to_string()).or_default();
                    *entry = entry.saturating_add(value(quantity));
                }
                _ => {}
            }
        }
    }

    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_default();
            *entry = entry.saturating_add(*amount);
        }
    }

    /// Subtracts `other` from these amounts.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_default();
            *entry = entry.saturating_sub(*amount);
        }
    }

    /// Raises each amount to at least the one in `list` (init containers run one at a time).
    fn max_list(&mut self, list: &BTreeMap<String, Quantity>) {
        let mut one = Resources::default();
        one.add_list(list);
        self.milli_cpu = self.milli_cpu.max(one.milli_cpu);
        self.memory = self.memory.max(one.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(one.ephemeral_storage);
        for (name, amount) in one.scalar {
            let entry = self.scalar.entry(name).or_default();
            *entry = (*entry).max(amount);
        }
    }

    /// Whether nothing at all is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// Whether `name` is a resource counted by name rather than one of the native four.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
        || name.starts_with("requests.")
}

/// What a pod asks of a node: the sum of its containers (and sidecars), at least
/// its largest init container, plus its overhead, as kube-scheduler computes it.
/// The second value is the same with default CPU and memory for containers that
/// request none, which scoring uses.
pub fn pod_requests(pod: &Pod) -> (Resources, Resources) {
    let mut requests = Resources::default();
    let mut non_zero = Resources::default();
    let Some(spec) = &pod.spec else {
        return (requests, non_zero);
    };
    let empty = BTreeMap::new();
    let container_requests = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .cloned()
            .unwrap_or_default()
    };
    let mut add_container = |list: &BTreeMap<String, Quantity>| {
        requests.add_list(list);
        let mut one = Resources::default();
        one.add_list(list);
        if !list.contains_key("cpu") {
            one.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.contains_key("memory") {
            one.memory = DEFAULT_MEMORY_REQUEST;
        }
        non_zero.add(&one);
    };
    for container in &spec.containers {
        add_container(&container_requests(container));
    }
    // Sidecars (init containers that restart) run alongside the containers.
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for container in init {
        if container.restart_policy.as_deref() == Some("Always") {
            add_container(&container_requests(container));
        }
    }
    for container in init {
        if container.restart_policy.as_deref() != Some("Always") {
            let list = container_requests(container);
            requests.max_list(&list);
            non_zero.max_list(&list);
        }
    }
    let overhead = spec.overhead.as_ref().unwrap_or(&empty);
    requests.add_list(overhead);
    non_zero.add_list(overhead);
    (requests, non_zero)
}

/// What a node offers pods: `status.allocatable`, or `status.capacity` without it.
pub fn node_allocatable(node: &Node) -> Resources {
    let mut resources = Resources::default();
    if let Some(status) = &node.status
        && let Some(list) = status.allocatable.as_ref().or(status.capacity.as_ref())
    {
        resources.add_list(list);
    }
    resources
}

/// The quantity in whole units, rounded up (`Quantity.Value()`); 0 if unparsable.
pub fn value(quantity: &Quantity) -> i64 {
    parse_scaled(&quantity.0, 0).unwrap_or(0)
}

/// The quantity in thousandths, rounded up (`Quantity.MilliValue()`); 0 if unparsable.
pub fn milli_value(quantity: &Quantity) -> i64 {
    parse_scaled(&quantity.0, 3).unwrap_or(0)
}

/// Parses a Kubernetes quantity and returns it times `10^extra_exp`, rounded up.
pub fn parse_scaled(text: &str, extra_exp: i32) -> Option<i64> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if frac_part.contains('.') {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let mut mantissa: i128 = 0;
    for d in digits.bytes() {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(d - b'0'))?;
    }
    let mut exp10: i32 = extra_exp - i32::try_from(frac_part.len()).ok()?;
    let mut binary: u32 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => binary = 10,
        "Mi" => binary = 20,
        "Gi" => binary = 30,
        "Ti" => binary = 40,
        "Pi" => binary = 50,
        "Ei" => binary = 60,
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            exp10 += exp.parse::<i32>().ok()?;
        }
    }
    mantissa = mantissa.checked_mul(1i128.checked_shl(binary)?)?;
    let scaled = if exp10 >= 0 {
        mantissa.checked_mul(10i128.checked_pow(u32::try_from(exp10).ok()?)?)?
    } else {
        let divisor = 10i128
            .checked_pow(u32::try_from(-exp10).ok()?)
            .unwrap_or(i128::MAX);
        // Round away from zero, as Quantity.Value() does for the magnitude.
        (mantissa + divisor - 1) / divisor
    };
    let scaled = if negative { -scaled } else { scaled };
    Some(i64::try_from(scaled).unwrap_or(if negative { i64::MIN } else { i64::MAX }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, milli: i64, units: i64) {
        assert_eq!(parse_scaled(text, 3), Some(milli), "{text} in milli");
        assert_eq!(parse_scaled(text, 0), Some(units), "{text} in units");
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        check("250m", 250, 1);
        check("2", 2000, 2);
        check("1.5", 1500, 2);
        check("1Ki", 1_024_000, 1024);
        check("1Gi", 1_073_741_824_000, 1_073_741_824);
        check("500M", 500_000_000_000, 500_000_000);
        check("1e3", 1_000_000, 1000);
        check("100n", 1, 1);
        check("0", 0, 0);
        assert_eq!(parse_scaled("abc", 0), None);
        assert_eq!(parse_scaled("1Qi", 0), None);
    }

    #[test]
    fn pod_requests_sum_containers_and_take_the_largest_init_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}},
                ],
                "initContainers": [
                    {"name": "i", "resources": {"requests": {"cpu": "1"}}},
                ],
                "overhead": {"cpu": "10m"},
            }
        }))
        .expect("pod");
        let (requests, non_zero) = pod_requests(&pod);
        assert_eq!(requests.milli_cpu, 1010);
        assert_eq!(requests.memory, 64 * 1024 * 1024);
        assert_eq!(requests.scalar.get("example.com/gpu"), Some(&1));
        // b has no memory request: scoring counts the default for it.
        assert_eq!(non_zero.memory, 64 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST);
    }

    proptest::proptest! {
        #[test]
        fn milli_values_are_a_thousand_times_whole_units(n in 0i64..1_000_000_000) {
            proptest::prop_assert_eq!(parse_scaled(&n.to_string(), 3), Some(n * 1000));
            proptest::prop_assert_eq!(parse_scaled(&format!("{n}m"), 3), Some(n));
        }
    }
}
