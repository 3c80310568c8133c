//! `kite-e2e-kube reflect NAMESPACE`: keeps a `kube` reflector of the
//! namespace's ConfigMaps (kubeconfig from `KUBECONFIG`) and prints, for every
//! watcher event, one JSON line with the event's kind and the reflector's
//! ConfigMap names. The end-to-end tests read these lines to check that the
//! reflector stays right when its resourceVersion expires and it must relist.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use std::io::Write;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, namespace] = args.as_slice() else {
        bail!("usage: kite-e2e-kube reflect NAMESPACE");
    };
    if command != "reflect" {
        bail!("unknown command {command:?}; the only one is reflect");
    }
    let client = Client::try_default()
        .await
        .context("no usable kubeconfig (KUBECONFIG)")?;
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let (reader, writer) = reflector::store();
    let mut events = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let kind = match &event {
            Ok(watcher::Event::Init) => "Init",
            Ok(watcher::Event::InitApply(_)) => "InitApply",
            Ok(watcher::Event::InitDone) => "InitDone",
            Ok(watcher::Event::Apply(_)) => "Apply",
            Ok(watcher::Event::Delete(_)) => "Delete",
            Err(_) => "Error",
        };
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|cm| cm.metadata.name.clone())
            .collect();
        names.sort();
        let error = event.as_ref().err().map(ToString::to_string);
        let line = serde_json::json!({"event": kind, "names": names, "error": error});
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}
