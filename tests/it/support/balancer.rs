//! The round-robin load balancer of the cluster tests is the library's
//! (`callflow::load::balancer`, which `callflow load --store postgres://…`
//! also puts in front of its instances).

pub use callflow::load::balancer::Balancer;
