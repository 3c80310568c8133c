//! kite's scheduler: binds pending pods to nodes, as kube-scheduler does.
//!
//! Start at [`Scheduler::run`]: it keeps informers on nodes and pods, queues
//! every unbound pod whose `schedulerName` is ours, and for each one runs the
//! [`filter`]s over the nodes (kube-scheduler's plugin order and wording), ranks
//! the nodes that fit with the [`score`]s, counts the pod on the winner at once
//! ("assumes" it, so the next decision already sees it) and binds it through
//! `pods/binding` in the background. A pod that fits nowhere gets a
//! `FailedScheduling` event and `PodScheduled=False` worded by [`message`], and
//! waits until nodes or pods change (or a minute passes) before the next try.
//! Pods with PersistentVolumeClaims also pass the [`volumes`] checks, and their
//! waiting claims get the chosen node before the pod is bound.
//!
//! The decision logic ([`filter`], [`score`], [`message`], [`resources`],
//! [`node_info`]) is pure and unit-tested; [`Scheduler`] only moves data.

pub mod filter;
pub mod image_locality;
pub mod inter_pod;
pub mod message;
pub mod node_info;
pub mod preemption;
pub mod queue;
pub mod resources;
mod schedule;
pub mod score;
#[cfg(test)]
mod tests;
pub mod volumes;

#[cfg(test)]
use schedule::feasible_nodes_to_find as schedule_feasible;
pub use schedule::{Config, Scheduler};
