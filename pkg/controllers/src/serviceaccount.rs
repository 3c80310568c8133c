//! Every namespace gets a `default` ServiceAccount and a `kube-root-ca.crt`
//! ConfigMap holding the CA that pods use to verify the apiserver, as
//! kube-controller-manager's serviceaccount and root-ca-cert-publisher do;
//! either is recreated (or corrected) if deleted or changed.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kite_client::{Informer, WorkQueue};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use std::collections::BTreeMap;
use std::time::Duration;

/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap with the root CA.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The serviceaccount and root-ca-cert-publisher controllers in one.
pub struct Controller {
    client: kube::Client,
    root_ca_pem: String,
    namespaces: Informer<Namespace>,
    accounts: Informer<ServiceAccount>,
    config_maps: Informer<ConfigMap>,
    queue: WorkQueue,
}

impl Controller {
    /// A controller publishing `config.root_ca_pem`.
    pub fn new(config: &Config) -> Self {
        let client = config.client.clone();
        let by_name =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let controller = Self {
            namespaces: Informer::new(Api::all(client.clone())),
            accounts: Informer::with_config(
                Api::all(client.clone()),
                by_name(DEFAULT_SERVICE_ACCOUNT),
            ),
            config_maps: Informer::with_config(
                Api::all(client.clone()),
                by_name(ROOT_CA_CONFIG_MAP),
            ),
            client,
            root_ca_pem: config.root_ca_pem.clone(),
            queue: WorkQueue::new(),
        };
        let queue = controller.queue.clone();
        controller.namespaces.on_change(move |change| {
            if let Some(name) = &change.object().metadata.name {
                queue.add(name);
            }
        });
        // A deleted or edited account or ConfigMap brings its namespace back for a look.
        let queue = controller.queue.clone();
        controller.accounts.on_change(move |change| {
            if let Some(ns) = &change.object().metadata.namespace {
                queue.add(ns);
            }
        });
        let queue = controller.queue.clone();
        controller.config_maps.on_change(move |change| {
            if let Some(ns) = &change.object().metadata.namespace {
                queue.add(ns);
            }
        });
        controller
    }

    /// Runs until the future is dropped.
    pub async fn run(self) {
        let worker = async {
            self.namespaces.wait_synced().await;
            self.accounts.wait_synced().await;
            self.config_maps.wait_synced().await;
            work("serviceaccount", self.queue.clone(), |ns| {
                self.reconcile(ns)
            })
            .await
        };
        tokio::join!(
            self.namespaces.clone().run(),
            self.accounts.clone().run(),
            self.config_maps.clone().run(),
            worker,
        );
    }

    async fn reconcile(&self, namespace: String) -> Result<Option<Duration>> {
        let Some(ns) = self.namespaces.get(&namespace) else {
            return Ok(None);
        };
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            // Creating into a terminating namespace is refused; nothing to do.
            return Ok(None);
        }
        let key = format!("{namespace}/{DEFAULT_SERVICE_ACCOUNT}");
        if self.accounts.get(&key).is_none() {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace);
            let account = ServiceAccount {
                metadata: meta(DEFAULT_SERVICE_ACCOUNT, &namespace),
                ..Default::default()
            };
            ignore_conflict(api.create(&PostParams::default(), &account).await)?;
        }
        let key = format!("{namespace}/{ROOT_CA_CONFIG_MAP}");
        let want = BTreeMap::from([("ca.crt".to_string(), self.root_ca_pem.clone())]);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
        match self.config_maps.get(&key) {
            None => {
                let map = ConfigMap {
                    metadata: meta(ROOT_CA_CONFIG_MAP, &namespace),
                    data: Some(want),
                    ..Default::default()
                };
                ignore_conflict(api.create(&PostParams::default(), &map).await)?;
            }
            Some(existing) if existing.data.as_ref() != Some(&want) => {
                let mut map = (*existing).clone();
                map.data = Some(want);
                api.replace(ROOT_CA_CONFIG_MAP, &PostParams::default(), &map)
                    .await?;
            }
            Some(_) => {}
        }
        Ok(None)
    }
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// Someone (an earlier pass whose watch event is not in yet) created it: fine.
fn ignore_conflict<T>(result: Result<T, kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        // The namespace began terminating meanwhile.
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
