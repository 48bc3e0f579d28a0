"""A sort's request: params.yaml's `sort` section plus what this run is about, built in one place.

    request = build_request(load_params(), source="~/inbox", out=Path("~/sorted"),
                            overrides=SortOverrides(action="move"))

`SortParams` (config.py) holds every setting and its default; `SortRequest` adds
the run's own fields; `SortOverrides` is the same fields, each optional (empty =
the params file's value), for the command line and the Prefect run form.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Callable, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, TypeAdapter, ValidationError, WithJsonSchema, \
    create_model, field_validator, model_serializer, model_validator
from pydantic.fields import FieldInfo

from mona_pipeline.config import MAX_IMAGE_PIXELS, Params, SortParams, TilingParams, listed_models, \
    validation_problems
from mona_pipeline.errors import UserError
from mona_pipeline.sort.reading import resolve_source


class SettingsError(UserError, ValueError):
    """A sort setting is out of range, unknown or inconsistent; the message names each one."""


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a run name: one folder under OUT/runs, never . or ..


class SortRequest(SortParams):
    """Everything one sort needs; the paper's settings window."""

    source: str = Field(description="a folder, a .zip/.tar(.gz/.bz2/.xz) archive read in place, a .txt list "
                                    "of paths, or a URL (s3://, gs://, ...); relative paths are relative to the "
                                    "project folder")
    out: Path = Field(description="output folder: keep/, review/ and runs/<run>/ (journal, report) go here")
    run: str | None = Field(None, description="run name; the same name resumes that run; empty = from the source")
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, gt=0,
                                  description="larger pictures are refused as decompression bombs")
    tiles: TilingParams = Field(TilingParams(), description="params.yaml's tiling section (its grid and rule)")

    @field_validator("source")
    @classmethod
    def _source_given(cls, source: str) -> str:
        if not source.strip():
            raise ValueError("source is empty: give a folder, an archive, a list of paths or a URL")
        return resolve_source(source)

    @field_validator("run")
    @classmethod
    def _plain_run_name(cls, run: str | None) -> str | None:
        if run is not None and not PLAIN_NAME.fullmatch(run):
            raise ValueError(f"run name {run!r} is not a plain folder name: use letters, digits, '.', '_' and '-', "
                             f"starting with a letter or a digit")
        return run

    @property
    def tiling_params(self) -> TilingParams:
        """The tiling this sort uses: params.yaml's tiling section, its mode replaced by `tiling` if given."""
        return self.tiles.model_copy(update={"mode": self.tiling}) if self.tiling else self.tiles

    def run_name(self, settings: str = "") -> str:
        """The given name, or one derived from source, action and `settings` (what else decides: the
        confidence, review band and model), so a rerun with the same settings finds the same run and one
        with other settings starts its own."""
        if self.run:
            return self.run  # validated: a plain folder name
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.source.rstrip("/")).name)[:40] or "source"
        key = f"{self.source}|{self.action}"  # the source resolved once, by resolve_source
        key += f"|{settings}" if settings else ""
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        return f"{stem}-{self.action}-{digest}"

    def run_dir(self, settings: str = "") -> Path:
        return self.out / "runs" / self.run_name(settings)


RUN_FIELDS = ("source", "out")  # what every request names; the rest has defaults in params.yaml or here
NOT_OVERRIDDEN = (*RUN_FIELDS, "tiles")  # the tiling grid is the project's: a run chooses only the mode


def _form_schema(field: FieldInfo) -> dict:
    """The field's JSON schema without its `null` branch: the run form shows one plain box (a number, a
    choice, a path) that may be left empty, not a toggle between a type and None. Empty fields are left
    out of the parameters (`_Overrides`), so the server never meets a `null` this schema would refuse."""
    annotated = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    schema = TypeAdapter(annotated).json_schema()
    variants = [variant for variant in schema.get("anyOf", [schema]) if variant.get("type") != "null"]
    return dict(variants[0]) if len(variants) == 1 else {"anyOf": variants}


def _optional_fields(model: type[BaseModel], skip: tuple[str, ...]) -> dict:
    """Each field of `model` as optional with the same description; None = not overridden."""
    return {name: (Annotated[field.annotation | None, WithJsonSchema(_form_schema(field))],
                   Field(None, description=field.description, json_schema_extra=_no_default,
                         validation_alias=field.validation_alias))
            for name, field in model.model_fields.items() if name not in skip}


def _no_default(schema: dict) -> None:
    schema.pop("default", None)  # empty, not `null`: the form's box starts blank and stays out of the run


class _Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _one_model_is_a_list(cls, values):
        if isinstance(values, dict):
            return {key: listed_models(value) if key in ("model", "models") and value is not None else value
                    for key, value in values.items()}
        return values

    @model_serializer(mode="wrap")
    def _without_empty_in_json(self, handler, info: SerializationInfo) -> dict:
        """In JSON (flow-run parameters, the form's defaults) only the fields that override something: an
        empty field is absent, never `null`, which the run form's schema (a plain box per field) refuses."""
        values = handler(self)
        return {name: value for name, value in values.items() if value is not None} if info.mode_is_json() else values


SortOverrides = create_model(
    "SortOverrides", __base__=_Overrides, __module__=__name__,
    __doc__="Settings that replace params.yaml's `sort` section for one run; empty = the file's value.",
    **_optional_fields(SortRequest, NOT_OVERRIDDEN))


def overrides_from(values) -> BaseModel:
    """A `SortOverrides` from any mapping or argparse namespace, taking only the names it knows."""
    values = values if isinstance(values, dict) else vars(values)
    return SortOverrides(**{name: values[name] for name in SortOverrides.model_fields if name in values})


def build_request(params: Params | None, source: str, out: Path,
                  overrides: BaseModel | dict | None = None) -> SortRequest:
    """The request for one sort: the params file's sort settings and pixel limit, then the overrides.

    Args:
        params: the project's parameters, or None outside a project (the built-in defaults).
        overrides: a `SortOverrides` (or a dict of its fields); None values are ignored.
    Raises:
        SettingsError: an override is out of range, unknown, or inconsistent (one line per setting).
    """
    settings = {}
    if params is not None:
        settings = params.sort.model_dump() | {"max_image_pixels": params.data.max_image_pixels,
                                               "tiles": params.tiling}
    if isinstance(overrides, BaseModel):
        overrides = overrides.model_dump()
    settings |= {key: value for key, value in (overrides or {}).items() if value is not None}
    if not str(out).strip():  # an empty --out would be the current folder
        raise SettingsError("sort setting out is empty: give the output folder (keep/, review/ and runs/ go there)")
    try:
        return SortRequest.model_validate({**settings, "source": str(source), "out": out})
    except ValidationError as error:
        raise SettingsError("; ".join(f"sort setting {problem}" for problem in validation_problems(error))) \
            from None


def add_sort_options(parser, defaults: dict | None = None) -> None:
    """Every sort setting as a command-line option (`--review-from`, ...), made from `SortOverrides`' fields:
    the CLI and the flow's command line offer the same options with the same help. Each defaults to None,
    params.yaml's value, unless `defaults` names another (the served nightly sort: action move)."""
    defaults = defaults or {}
    for name in SortOverrides.model_fields:
        field = SortRequest.model_fields[name]
        kind = next((t for t in get_args(field.annotation) if t is not type(None)), field.annotation) \
            if get_origin(field.annotation) in (Union, UnionType) else field.annotation
        choices = get_args(kind) if get_origin(kind) is Literal else None
        if get_origin(kind) is list:  # `--model A --model B`: the option once per value, under the alias
            (item,) = get_args(kind)
            parser.add_argument(f"--{field.validation_alias.choices[-1]}", dest=name, action="append",
                                default=defaults.get(name), type=item, metavar="FOLDER",
                                help=f"give it once per model (--model A --model B); {field.description}")
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", default=defaults.get(name), choices=choices,
                            type=None if choices else option_type(kind, field), help=field.description)


def option_type(kind: type, field: FieldInfo) -> Callable[[str], object]:
    """The option's parser: its type and the setting's bounds, with a one-line message that argparse shows
    as `argument --confidence: must be between 0 and 1, got 95`."""
    adapter = TypeAdapter(Annotated[(kind, *field.metadata)] if field.metadata else kind)
    low, high = _bound(field, "ge", "gt"), _bound(field, "le", "lt")
    if low is not None and high is not None:
        need = f"between {low:g} and {high:g}"
    elif low is not None:
        need = f"at least {low:g}" if _bound(field, "ge") is not None else f"more than {low:g}"
    else:
        need = {float: "a number", int: "a whole number"}.get(kind, f"a {kind.__name__}")

    def parse(text: str):
        try:
            return adapter.validate_python(kind(text))
        except (ValueError, ValidationError):
            raise argparse.ArgumentTypeError(f"must be {need}, got {text}") from None

    parse.__name__ = kind.__name__
    return parse


def _bound(field: FieldInfo, *names: str) -> float | None:
    return next((getattr(item, name) for item in field.metadata for name in names if hasattr(item, name)), None)
