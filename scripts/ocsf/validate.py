"""Validates OCSF JSON lines against the OCSF JSON Schema of each event's class and version.

The schemas are generated locally by `ocsf-json-schema` from the OCSF releases it packages
(no download from schema.ocsf.io) and checked with `jsonschema` (Draft 2020-12), both from
PyPI. On top of the schema, the classification ids must agree with each other
(type_uid = class_uid * 100 + activity_id; category_uid = class_uid // 1000), which a JSON
Schema cannot say.

Usage: python validate.py FILE...   Exit status 0 if every line of every file is valid;
1 with each problem named by file, line and path otherwise.
"""

import json
import sys

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

MAX_REPORTED = 20


def main(paths):
    validators = {}
    problems = 0
    valid = 0
    for path in paths:
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                where = f"{path}:{number}"
                try:
                    event = json.loads(line)
                    version = event["metadata"]["version"]
                    class_uid = event["class_uid"]
                    profiles = tuple(sorted(event["metadata"].get("profiles", [])))
                except (ValueError, KeyError, TypeError) as error:
                    problems += report(where, f"not an OCSF event: {error!r}", problems)
                    continue
                key = (version, class_uid, profiles)
                if key not in validators:
                    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
                    name = schema.lookup_class_name_from_uid(class_uid=class_uid)
                    class_schema = schema.get_class_schema(class_name=name, profiles=list(profiles))
                    Draft202012Validator.check_schema(class_schema)
                    validators[key] = Draft202012Validator(class_schema)
                errors = [
                    f"{'/'.join(map(str, error.absolute_path)) or '(event)'}: {error.message}"
                    for error in validators[key].iter_errors(event)
                ]
                if event.get("type_uid") != class_uid * 100 + event.get("activity_id", -1):
                    errors.append("type_uid is not class_uid * 100 + activity_id")
                if event.get("category_uid") != class_uid // 1000:
                    errors.append("category_uid is not class_uid // 1000")
                for error in errors:
                    problems += report(where, error, problems)
                if not errors:
                    valid += 1
    print(f"{valid} valid events; {problems} problems")
    return 0 if problems == 0 and valid > 0 else 1


def report(where, message, reported):
    if reported < MAX_REPORTED:
        print(f"{where}: {message}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
