//! Prints the `RestateCluster` CRD as YAML; `make crds` writes it to `crds/` and the chart.

fn main() {
    print!("{}", restate_operator::crd::crd_yaml());
}
