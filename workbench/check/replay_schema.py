"""The JSON Schema of counterexample (replay) files and the bounds a file may ask for.

The schema is generated from the registries -- layer types and their fields from
``workbench.nets.spec.LAYER_TYPES``, axiom names from ``workbench.axioms`` -- so a new layer type
is either described here or refused loudly (a field type the generator does not model raises),
never let through unchecked. JSON Schema draft 2020-12, validated with ``jsonschema``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Union

import torch

from workbench.axioms import axioms
from workbench.core.errors import WorkbenchError
from workbench.nets import spec as S

__all__ = ["DTYPES", "LIMITS", "READABLE_VERSIONS", "ReplayLimits", "SCHEMA_VERSION", "schema"]

#: the version written; files of every version in ``READABLE_VERSIONS`` go through the same schema
SCHEMA_VERSION = 2
#: version 1 (before the schema) had the same layout with fewer method forms
READABLE_VERSIONS = (1, 2)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ReplayLimits:
    """Bounds on what a replay file may ask for, checked before any allocation.

    The checker's shrunk counterexamples are a few units wide; these bounds leave room for
    hand-made cases (a 64x64 RGB input, a 4096-unit layer) and refuse what would allocate
    gigabytes or take minutes.
    """

    max_bytes: int = 32 * 2**20
    max_depth: int = 48  # JSON nesting (a conv weight is 4 deep, a residual body adds 3 per level)
    max_width: int = 4096  # units / channels of a layer, entries of one input dimension
    max_kernel: int = 64
    max_layers: int = 64
    max_networks: int = 8
    max_elements: int = 4_000_000  # of one tensor: a parameter, the input, an activation
    max_total_elements: int = 8_000_000  # of all parameters of all networks
    max_label: int = 400
    max_option_int: int = 10_000  # integer literals in a method label (steps, samples, ...)


LIMITS = ReplayLimits()

# bounds of the layer fields by name: (minimum, maximum); ints default to [0, max_width]
_FIELD_BOUNDS: dict[str, Callable[[ReplayLimits], tuple[float, float]]] = {
    "out_features": lambda L: (1, L.max_width),
    "out_channels": lambda L: (1, L.max_width),
    "kernel_size": lambda L: (1, L.max_kernel),
    "stride": lambda L: (1, L.max_kernel),
    "padding": lambda L: (0, L.max_kernel),
}
_POSITIVE_FLOATS = ("eps", "beta")


# -- schema -------------------------------------------------------------------------------------
def _field_schema(name: str, tp: Any, limits: ReplayLimits, where: str) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return {"anyOf": [_field_schema(name, inner[0], limits, where), {"type": "null"}]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        lo, hi = _FIELD_BOUNDS.get(name, lambda L: (0, L.max_width))(limits)
        return {"type": "integer", "minimum": lo, "maximum": hi}
    if tp is float:
        return {"type": "number", "exclusiveMinimum": 0} if name in _POSITIVE_FLOATS else {"type": "number"}
    if name == "body":
        return {"type": "array", "maxItems": limits.max_layers, "items": {"$ref": "#/$defs/layer"}}
    raise WorkbenchError(f"layer field {where}.{name} has a type ({tp!r}) the replay schema does not model; extend workbench.check.counterexample")


def _layer_schemas(limits: ReplayLimits) -> list[dict]:
    out = []
    for type_name, cls in S.LAYER_TYPES.items():
        hints = typing.get_type_hints(cls)
        props = {"type": {"const": type_name}}
        for f in dataclasses.fields(cls):
            props[f.name] = _field_schema(f.name, hints[f.name], limits, type_name)
        out.append({"type": "object", "properties": props, "required": ["type"], "additionalProperties": False})
    return out


def schema(limits: ReplayLimits = LIMITS) -> dict:
    """The JSON Schema (draft 2020-12) of a counterexample file, from the layer and axiom registries."""
    return _schema(limits)


@lru_cache(maxsize=4)
def _schema(limits: ReplayLimits) -> dict:
    name = {"type": "string", "minLength": 1, "maxLength": limits.max_label}
    claims = {"type": "object", "maxProperties": 64, "additionalProperties": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}}
    matcher = {
        "oneOf": [
            {"type": "object", "properties": {"layers": {"type": "array", "minItems": 1, "maxItems": 16, "items": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$"}}}, "required": ["layers"], "additionalProperties": False},
            {"type": "object", "properties": {"pattern": {"type": "string", "maxLength": 200}}, "required": ["pattern"], "additionalProperties": False},
        ]
    }
    rule = {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "rule": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$"},
                    "fields": {"type": "object", "maxProperties": 16, "additionalProperties": {"anyOf": [
                        {"type": ["number", "boolean", "null"]}, {"type": "string", "maxLength": 100},
                        {"type": "array", "maxItems": limits.max_width, "items": {"type": "number"}},
                    ]}},
                },
                "required": ["rule", "fields"],
                "additionalProperties": False,
            },
            {"type": "object", "properties": {"function": {"type": "string", "maxLength": limits.max_label}}, "required": ["function"], "additionalProperties": False},
        ]
    }
    prototype = {
        "type": "object",
        "properties": {
            "rules": {"type": "array", "maxItems": 32, "items": {"type": "array", "prefixItems": [matcher, rule], "minItems": 2, "maxItems": 2}},
            "first": {"anyOf": [rule, {"type": "null"}]},
            "canonizers": {"type": "array", "maxItems": 8, "items": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$"}},
            "seed": {"enum": ["gradient", "relevance"]},
            "times_input": {"type": "boolean"},
        },
        "required": ["rules", "first", "canonizers", "seed", "times_input"],
        "additionalProperties": False,
    }
    method = {
        "oneOf": [
            {"type": "object", "properties": {"label": name}, "required": ["label"], "additionalProperties": False},
            {"type": "object", "properties": {"callable": {"anyOf": [name, {"type": "null"}]}, "name": name, "claims": claims}, "required": ["callable", "name"], "additionalProperties": False},
            {"type": "object", "properties": {"prototype": {"anyOf": [prototype, {"type": "null"}]}, "name": name, "claims": claims, "reason": {"type": "string", "maxLength": 1000}}, "required": ["prototype", "name"], "additionalProperties": False},
        ]
    }
    param_value = {"anyOf": [{"type": ["number", "boolean", "null"]}, {"type": "string", "maxLength": 200}, {"type": "array"}]}
    network = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "input_shape": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer", "minimum": 1, "maximum": limits.max_width}},
                    "layers": {"type": "array", "minItems": 1, "maxItems": limits.max_layers, "items": {"$ref": "#/$defs/layer"}},
                    "shared_relu": {"type": "boolean"},
                },
                "required": ["input_shape", "layers"],
                "additionalProperties": False,
            },
            "state": {"type": "object", "maxProperties": 4 * limits.max_layers, "additionalProperties": {"type": ["array", "number"]}},
        },
        "required": ["spec", "state"],
        "additionalProperties": False,
    }
    number_or_text = {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "workbench counterexample",
        "type": "object",
        "properties": {
            "workbench_counterexample": {"enum": list(READABLE_VERSIONS)},
            "workbench_version": {"type": "string", "maxLength": 100},
            "torch_version": {"type": "string", "maxLength": 100},
            "axiom": {"enum": sorted(axioms())},
            "method": method,
            "dtype": {"enum": sorted(DTYPES)},
            "outcome": {
                "type": "object",
                "properties": {"residual": number_or_text, "tolerance": {"type": "number", "minimum": 0}, "applicable": {"type": "boolean"}, "note": {"type": "string", "maxLength": 10_000},
                               "error": {"type": "string", "maxLength": 10_000}},
                "required": ["tolerance"],
                "additionalProperties": False,
            },
            "case": {
                "type": "object",
                "properties": {
                    "networks": {"type": "object", "minProperties": 1, "maxProperties": limits.max_networks, "propertyNames": {"pattern": "^[A-Za-z0-9_]{1,32}$"}, "additionalProperties": network},
                    "x": {"type": "array"},
                    "baseline": {"type": "array"},
                    "target": {"type": "integer", "minimum": 0, "maximum": limits.max_width},
                    "params": {"type": "object", "maxProperties": 16, "propertyNames": {"pattern": "^[A-Za-z0-9_]{1,32}$"}, "additionalProperties": param_value},
                    "label": {"type": "string", "maxLength": 200},
                },
                "required": ["networks", "x", "baseline", "target"],
                "additionalProperties": False,
            },
        },
        "required": ["workbench_counterexample", "axiom", "method", "dtype", "outcome", "case"],
        "additionalProperties": False,
        "$defs": {"layer": {"oneOf": _layer_schemas(limits)}},
    }
