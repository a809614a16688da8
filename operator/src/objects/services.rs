//! The headless Service (a stable DNS name per pod) and the client Service.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;
use crate::names::{ADMIN_PORT, INGRESS_PORT, NODE_PORT};

/// Port names, shared with the container's ports.
pub const NODE_PORT_NAME: &str = "node";
pub const ADMIN_PORT_NAME: &str = "admin";
pub const INGRESS_PORT_NAME: &str = "ingress";

fn port(name: &str, number: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(number),
        target_port: Some(IntOrString::Int(i32::from(number))),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// `<name>-cluster`: headless (no cluster IP), the StatefulSet's `serviceName`, so that pod
/// `<name>-<i>` resolves as `<name>-<i>.<name>-cluster.<ns>.svc.<domain>`. Not-ready pods are
/// published too: a starting node must be reachable by its peers before it reports ready.
pub fn headless_service(cluster: &RestateCluster, ctx: &BuildContext) -> Result<Service, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    Ok(Service {
        metadata: owned_meta(cluster, &names, names.headless_service())?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector_labels()),
            ports: Some(vec![
                port(NODE_PORT_NAME, NODE_PORT),
                port(ADMIN_PORT_NAME, ADMIN_PORT),
                port(INGRESS_PORT_NAME, INGRESS_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// `<name>`: a ClusterIP Service over the ready pods for clients: HTTP ingress (8080) and the
/// admin API (9070, e.g. `restate dp register`).
pub fn client_service(cluster: &RestateCluster, ctx: &BuildContext) -> Result<Service, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    Ok(Service {
        metadata: owned_meta(cluster, &names, names.client_service())?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names.selector_labels()),
            ports: Some(vec![port(INGRESS_PORT_NAME, INGRESS_PORT), port(ADMIN_PORT_NAME, ADMIN_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    fn ports(service: &Service) -> Vec<(String, i32)> {
        let ports = service.spec.as_ref().unwrap().ports.as_ref().unwrap();
        ports.iter().map(|p| (p.name.clone().unwrap(), p.port)).collect()
    }

    #[test]
    fn headless_service_publishes_every_pod() {
        let service = headless_service(&fixtures::cluster(), &BuildContext::new(20)).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("demo-cluster"));
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let selector = spec.selector.as_ref().unwrap();
        assert_eq!(selector.len(), 2);
        assert_eq!(selector["app.kubernetes.io/instance"], "demo");
        assert_eq!(ports(&service), [("node".into(), 5122), ("admin".into(), 9070), ("ingress".into(), 8080)]);
    }

    #[test]
    fn client_service_exposes_ingress_and_admin() {
        let service = client_service(&fixtures::cluster(), &BuildContext::new(20)).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("demo"));
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.publish_not_ready_addresses, None, "clients only reach ready nodes");
        assert_eq!(ports(&service), [("ingress".into(), 8080), ("admin".into(), 9070)]);
    }
}
