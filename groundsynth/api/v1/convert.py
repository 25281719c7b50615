"""Conversions between the package's domain objects and groundsynth.v1 messages.

The only place (with the service) where transport messages are built: JobSpec
<-> pb.JobSpec, TileRecord -> pb.TileResult, and the pipeline's domain events
-> (event kind, pb sub-message of JobEvent).
"""
from __future__ import annotations

from typing import Any

from groundsynth.api.v1.contract import pb
from groundsynth.artefacts.records import TileRecord
from groundsynth.pipeline import events as ev
from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import (
    DEFAULT_TILE,
    Aoi,
    BandMapping,
    JobSpec,
    ReferenceFeature,
    ReferenceSamples,
    SplitOptions,
    StageConfig,
    SynthesisOptions,
)


def spec_from_proto(m: Any) -> JobSpec:
    """A JobSpec from a groundsynth.v1.JobSpec (any generated copy: only fields are read)."""
    which = m.aoi.WhichOneof("shape")
    aoi = Aoi(
        bbox=(m.aoi.bbox.minx, m.aoi.bbox.miny, m.aoi.bbox.maxx, m.aoi.bbox.maxy) if which == "bbox" else None,
        polygon_wkt=m.aoi.polygon_wkt if which == "polygon_wkt" else None,
        crs=m.aoi.crs,
    )
    src = m.WhichOneof("source")
    if m.synthesis.variants < 0:
        # on the wire 0 is the default (proto3 cannot tell unset from 0); a negative count is a mistake
        raise InvalidArgument(f"expected 0 (the default: 1 when synthesising) or 1..16 variants, got "
                              f"{m.synthesis.variants}", "synthesis.variants")
    bands = BandMapping(m.bands.red or 1, m.bands.green or 2, m.bands.blue or 3, m.bands.nir, m.bands.swir1,
                        m.bands.swir2)
    synthesis = SynthesisOptions(
        # proto3 cannot tell an unset 0 from 0: 0 means "default" (1 if synthesise runs)
        variants=m.synthesis.variants or -1,
        mask_strategy=m.synthesis.mask_strategy or "real",
        boost_targets=dict(m.synthesis.boost_targets),
    )
    return JobSpec(
        aoi=aoi,
        raster_path=m.raster_path if src == "raster_path" else None,
        upload_id=m.upload_id if src == "upload_id" else None,
        bands=bands,
        tile_size=m.tile_size or DEFAULT_TILE,
        overlap=m.overlap,
        stages=[StageConfig(st.stage, st.engine, dict(st.params)) for st in m.stages],
        synthesis=synthesis,
        seed=m.seed,
        label_raster_path=m.label_raster_path or None,
        name=m.name,
        split=SplitOptions(m.split.train, m.split.val, m.split.test, m.split.block_tiles),
        executor=m.executor,
        reference=reference_from_proto(m.reference),
    )


def reference_from_proto(r: Any) -> ReferenceSamples:
    return ReferenceSamples(
        path=r.path, crs=r.crs, class_field=r.class_field, layer=r.layer, split=r.split,
        features=[ReferenceFeature(wkt=f.wkt, class_value=f.class_value, id=f.id, split=f.split, stratum=f.stratum,
                                   stratum_size=f.stratum_size) for f in r.features])


def reference_to_proto(ref: ReferenceSamples) -> Any:
    return pb.ReferenceSamples(
        path=ref.path, crs=ref.crs, class_field=ref.class_field, layer=ref.layer, split=ref.split,
        features=[pb.ReferenceFeature(wkt=f.wkt, class_value=f.class_value, id=f.id, split=f.split,
                                      stratum=f.stratum, stratum_size=f.stratum_size) for f in ref.features])


def spec_to_proto(spec: JobSpec) -> Any:
    m = pb.JobSpec(
        bands=pb.BandMapping(red=spec.bands.red, green=spec.bands.green, blue=spec.bands.blue, nir=spec.bands.nir,
                             swir1=spec.bands.swir1, swir2=spec.bands.swir2),
        tile_size=spec.tile_size, overlap=spec.overlap, seed=spec.seed,
        label_raster_path=spec.label_raster_path or "", name=spec.name,
        synthesis=pb.SynthesisOptions(variants=max(spec.synthesis.variants, 0),
                                      mask_strategy=spec.synthesis.mask_strategy,
                                      boost_targets=spec.synthesis.boost_targets),
        stages=[pb.StageConfig(stage=s.stage, engine=s.engine, params=s.params) for s in spec.stages],
        split=pb.SplitOptions(train=spec.split.train, val=spec.split.val, test=spec.split.test,
                              block_tiles=spec.split.block_tiles),
        executor=spec.executor or "",
        reference=reference_to_proto(spec.reference),
    )
    if spec.raster_path:
        m.raster_path = spec.raster_path
    elif spec.upload_id:
        m.upload_id = spec.upload_id
    m.aoi.crs = spec.aoi.crs
    if spec.aoi.bbox is not None:
        m.aoi.bbox.CopyFrom(pb.BBox(minx=spec.aoi.bbox[0], miny=spec.aoi.bbox[1],
                                    maxx=spec.aoi.bbox[2], maxy=spec.aoi.bbox[3]))
    elif spec.aoi.polygon_wkt:
        m.aoi.polygon_wkt = spec.aoi.polygon_wkt
    return m


def record_to_proto(rec: TileRecord) -> Any:
    minx, miny, maxx, maxy = rec.bounds
    return pb.TileResult(
        tile_id=rec.tile_id, kind=rec.kind, row=rec.row, col=rec.col, variant=rec.variant,
        source_tile_id=rec.source_tile_id, nodata=rec.nodata,
        footprint=pb.Footprint(crs=rec.crs, bounds=pb.BBox(minx=minx, miny=miny, maxx=maxx, maxy=maxy),
                               geotransform=list(rec.geotransform), width=rec.width, height=rec.height,
                               col_off=rec.col_off, row_off=rec.row_off),
        artefacts=[pb.Artefact(kind=k, path=p, media_type="image/tiff") for k, p in sorted(rec.artefacts.items())],
        composition=rec.composition_by_name(),
        captions=list(rec.captions),
        metrics={k: float(v) for k, v in rec.metrics.items()},
        attributes=dict(rec.attributes),
    )


def event_to_proto(event: ev.Event) -> tuple[str, Any]:
    """(JobEvent oneof field name, message) of a pipeline domain event."""
    if isinstance(event, ev.Accepted):
        return event.kind, pb.Accepted(job_id=event.job_id, tile_count=event.tile_count,
                                       skipped_tiles=event.skipped_tiles, output_dir=event.output_dir,
                                       spec=spec_to_proto(event.spec))
    if isinstance(event, ev.Progress):
        return event.kind, pb.Progress(stage=event.stage, done=event.done, total=event.total)
    if isinstance(event, ev.TileDone):
        return event.kind, record_to_proto(event.record)
    if isinstance(event, ev.LayerReady):
        return event.kind, pb.LayerReady(layer=event.layer, path=event.path, format=event.format)
    if isinstance(event, ev.ReportReady):
        return event.kind, pb.ReportReady(json_path=event.json_path, html_path=event.html_path,
                                          summary=dict(event.summary))
    if isinstance(event, ev.Done):
        return event.kind, pb.Done(state=pb.JobState.Value(event.state), real_tiles=event.real_tiles,
                                   synthetic_tiles=event.synthetic_tiles, output_dir=event.output_dir)
    raise TypeError(f"not a pipeline event: {event!r}")
