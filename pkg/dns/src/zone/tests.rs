//! Lookups over zones built from literal Services and EndpointSlices.

use super::*;
use serde_json::json;

fn service(value: serde_json::Value) -> std::sync::Arc<Service> {
    std::sync::Arc::new(serde_json::from_value(value).unwrap())
}

fn slice(value: serde_json::Value) -> std::sync::Arc<EndpointSlice> {
    std::sync::Arc::new(serde_json::from_value(value).unwrap())
}

fn zone() -> Zone {
    let services = vec![
        service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"port": 81, "protocol": "TCP"}]}
        })),
        service(json!({
            "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"clusterIP": "None",
                     "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}
        })),
        service(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com."}
        })),
    ];
    let slices = vec![slice(json!({
        "metadata": {"name": "db-1", "namespace": "prod",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.0.6"], "conditions": {}},
            {"addresses": ["10.42.0.7"], "hostname": "db-2", "conditions": {"ready": false}},
        ],
    }))];
    Zone::build(
        "cluster.local",
        "10.43.0.10".parse().ok(),
        &services,
        &slices,
        1,
    )
}

fn query(name: &str, qtype: u16) -> Query {
    Query {
        id: 1,
        opcode: 0,
        rd: true,
        name: name.to_string(),
        qtype,
        qclass: crate::wire::CLASS_IN,
        edns: None,
    }
}

/// The rcode and answer data of a local lookup.
fn check(name: &str, qtype: u16) -> (u8, Vec<Rdata>) {
    match zone().lookup(&query(name, qtype)) {
        Answer::Local(r) => (r.rcode, r.answers.into_iter().map(|a| a.data).collect()),
        Answer::Forward => panic!("{name} forwarded"),
    }
}

fn a(ip: &str) -> Rdata {
    Rdata::A(ip.parse().unwrap())
}

#[test]
fn a_cluster_ip_service_has_an_a_record_in_any_case() {
    assert_eq!(
        check("web.default.svc.cluster.local", rtype::A),
        (0, vec![a("10.43.0.20")])
    );
    assert_eq!(
        check("WEB.Default.SVC.cluster.LOCAL.", rtype::A),
        (0, vec![a("10.43.0.20")])
    );
}

#[test]
fn names_with_other_types_are_nodata_and_unknown_names_nxdomain() {
    assert_eq!(
        check("web.default.svc.cluster.local", rtype::AAAA),
        (rcode::NOERROR, vec![])
    );
    assert_eq!(
        check("default.svc.cluster.local", rtype::A),
        (rcode::NOERROR, vec![])
    );
    assert_eq!(
        check("svc.cluster.local", rtype::A),
        (rcode::NOERROR, vec![])
    );
    assert_eq!(
        check("nope.default.svc.cluster.local", rtype::A),
        (rcode::NXDOMAIN, vec![])
    );
    assert_eq!(
        check("web.nope.svc.cluster.local", rtype::A),
        (rcode::NXDOMAIN, vec![])
    );
    // The search path's tail: `web.default.svc.cluster.local.default.svc.cluster.local`.
    assert_eq!(
        check(
            "web.default.svc.cluster.local.default.svc.cluster.local",
            rtype::A
        ),
        (rcode::NXDOMAIN, vec![])
    );
}

#[test]
fn negative_answers_carry_the_soa() {
    let Answer::Local(r) = zone().lookup(&query("nope.cluster.local", rtype::A)) else {
        panic!("forwarded")
    };
    assert_eq!(r.rcode, rcode::NXDOMAIN);
    assert!(matches!(
        r.authority[0].data,
        Rdata::Soa { minimum: TTL, .. }
    ));
}

#[test]
fn a_headless_service_answers_each_ready_endpoint() {
    let (code, mut answers) = check("db.prod.svc.cluster.local", rtype::A);
    answers.sort_by_key(|r| format!("{r:?}"));
    assert_eq!((code, answers), (0, vec![a("10.42.0.5"), a("10.42.0.6")]));
    assert_eq!(
        check("db-0.db.prod.svc.cluster.local", rtype::A),
        (0, vec![a("10.42.0.5")])
    );
    assert_eq!(
        check("10-42-0-6.db.prod.svc.cluster.local", rtype::A),
        (0, vec![a("10.42.0.6")])
    );
    assert_eq!(
        check("db-2.db.prod.svc.cluster.local", rtype::A),
        (rcode::NXDOMAIN, vec![])
    );
}

#[test]
fn named_ports_have_srv_records() {
    let srv = |port, target: &str| Rdata::Srv {
        priority: 0,
        weight: 100,
        port,
        target: target.to_string(),
    };
    assert_eq!(
        check("_http._tcp.web.default.svc.cluster.local", rtype::SRV),
        (0, vec![srv(80, "web.default.svc.cluster.local")])
    );
    let (_, mut answers) = check("_pg._tcp.db.prod.svc.cluster.local", rtype::SRV);
    answers.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        answers,
        vec![
            srv(15432, "10-42-0-6.db.prod.svc.cluster.local"),
            srv(15432, "db-0.db.prod.svc.cluster.local"),
        ]
    );
    assert_eq!(
        check("_http._udp.web.default.svc.cluster.local", rtype::SRV).0,
        rcode::NXDOMAIN
    );
    assert_eq!(
        check("_tcp.web.default.svc.cluster.local", rtype::SRV).0,
        rcode::NOERROR
    );
}

#[test]
fn srv_answers_carry_target_addresses() {
    let Answer::Local(r) = zone().lookup(&query(
        "_http._tcp.web.default.svc.cluster.local",
        rtype::SRV,
    )) else {
        panic!("forwarded")
    };
    assert_eq!(r.additional[0].data, a("10.43.0.20"));
}

#[test]
fn reverse_names_of_service_and_endpoint_addresses_have_ptr() {
    let ptr = |n: &str| Rdata::Ptr(n.to_string());
    assert_eq!(
        check("20.0.43.10.in-addr.arpa", rtype::PTR),
        (0, vec![ptr("web.default.svc.cluster.local")])
    );
    assert_eq!(
        check("5.0.42.10.IN-ADDR.ARPA", rtype::PTR),
        (0, vec![ptr("db-0.db.prod.svc.cluster.local")])
    );
    assert_eq!(
        zone().lookup(&query("1.1.168.192.in-addr.arpa", rtype::PTR)),
        Answer::Forward
    );
}

#[test]
fn an_external_name_is_a_cname_for_every_type() {
    let cname = Rdata::Cname("example.com".to_string());
    assert_eq!(
        check("ext.default.svc.cluster.local", rtype::A),
        (0, vec![cname.clone()])
    );
    assert_eq!(
        check("ext.default.svc.cluster.local", rtype::AAAA),
        (0, vec![cname])
    );
}

#[test]
fn pod_names_carry_their_address() {
    assert_eq!(
        check("10-42-0-9.default.pod.cluster.local", rtype::A),
        (0, vec![a("10.42.0.9")])
    );
    assert_eq!(
        check("10-42-0-9.default.pod.cluster.local", rtype::AAAA),
        (0, vec![])
    );
    assert_eq!(
        check("10-42-0.default.pod.cluster.local", rtype::A).0,
        rcode::NXDOMAIN
    );
    assert_eq!(check("pod.cluster.local", rtype::A), (0, vec![]));
}

#[test]
fn the_schema_version_is_a_txt_record() {
    assert_eq!(
        check("dns-version.cluster.local", rtype::TXT),
        (0, vec![Rdata::Txt("1.1.0".to_string())])
    );
}

#[test]
fn names_outside_the_domain_are_forwarded() {
    assert_eq!(
        zone().lookup(&query("example.com", rtype::A)),
        Answer::Forward
    );
    assert_eq!(
        zone().lookup(&query("notcluster.local", rtype::A)),
        Answer::Forward
    );
}
