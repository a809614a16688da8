"""Validates Kubernetes objects against the OpenAPI schemas of one Kubernetes release, as
the `kubernetes-validate` package ships them (strict: unknown fields are errors).

usage: validate.py --kubernetes 1.20.0 OBJECTS.json ...   (each file: a JSON list of objects)
Exit 1, naming each object and the field, when any object does not validate."""

import argparse
import json
import sys

import kubernetes_validate


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubernetes", required=True, help="release whose schemas to use, e.g. 1.20.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failures = 0
    checked = 0
    for path in args.files:
        with open(path) as f:
            objects = json.load(f)
        for obj in objects:
            what = f"{obj.get('kind')} {obj.get('apiVersion')} {obj.get('metadata', {}).get('name')} ({path})"
            try:
                kubernetes_validate.validate(obj, args.kubernetes, strict=True)
                checked += 1
            except kubernetes_validate.ValidationError as e:
                failures += 1
                field = ".".join(str(p) for p in e.path) or "(the object)"
                print(f"k8s-validate {args.kubernetes}: {what}: {field}: {e.message}", file=sys.stderr)
            except Exception as e:  # an unknown kind/version in this release is a failure too
                failures += 1
                print(f"k8s-validate {args.kubernetes}: {what}: {type(e).__name__} {e}".rstrip(), file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"k8s-validate {args.kubernetes}: {checked} objects valid")


if __name__ == "__main__":
    main()
