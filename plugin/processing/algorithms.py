"""Processing algorithms: a full GroundSynth job, and one per stage.

Each algorithm submits one job to a running backend and blocks (Processing
runs it in a worker thread) while consuming the event stream; cancelling the
Processing feedback cancels the job on the backend. No GUI calls, so they work
in the toolbox, batch mode, the graphical modeller and qgis_process.

Stage algorithms run the stages they need (the backend runs stages in the
order segment, synthesise, caption, ground):
- segment:    segment
- synthesise: segment + synthesise (synthesis is conditioned on the masks)
- caption:    segment + caption (captioners read masks for composition)
- ground:     segment + caption + ground (grounding scores captions)
"""
from __future__ import annotations

import threading
from pathlib import Path

import grpc
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..area import crs_text
from ..connection.api import BackendClient, read_token, state_name
from ..errors import PluginError, user_message
from ..job_request import JobRequest, StageChoice, parse_engines, parse_params, parse_targets
from ..layers.results import ArtefactSource
from ..reference import inline_features, source_features
from ..settings import PluginSettings

MASK_STRATEGIES = ("real", "boost", "layout")


class GroundSynthAlgorithm(QgsProcessingAlgorithm):
    """Base: parameters shared by all GroundSynth algorithms; subclasses set the stages."""

    STAGES: tuple[str, ...] = ("segment", "synthesise", "caption", "ground")
    ALG_ID = "runjob"
    ALG_NAME = "Run full job"
    HELP = "Runs segment, synthesise, caption and ground on every tile of the area of interest."

    INPUT, EXTENT, AOI_LAYER = "INPUT", "EXTENT", "AOI_LAYER"
    RED, GREEN, BLUE, NIR = "RED", "GREEN", "BLUE", "NIR"
    LABELS, TILE_SIZE, ENGINES, PARAMS = "LABELS", "TILE_SIZE", "ENGINES", "PARAMS"
    REFERENCE, REFERENCE_CLASS = "REFERENCE", "REFERENCE_CLASS"
    VARIANTS, SEED, MASK_STRATEGY, BOOST = "VARIANTS", "SEED", "MASK_STRATEGY", "BOOST"
    ADDRESS, TOKEN_FILE, CACHE_DIR, REMOTE = "ADDRESS", "TOKEN_FILE", "CACHE_DIR", "REMOTE"
    OUTPUT_DIR, TILES, MASK, REPORT, JOB_ID, STATE_OUT = "OUTPUT_DIR", "TILES", "MASK", "REPORT", "JOB_ID", "STATE"

    def createInstance(self):
        return type(self)()

    def name(self):
        return self.ALG_ID

    def displayName(self):
        return self.ALG_NAME

    def group(self):
        return "Jobs" if self.ALG_ID == "runjob" else "Stages"

    def groupId(self):
        return "jobs" if self.ALG_ID == "runjob" else "stages"

    def shortHelpString(self):
        return (f"{self.HELP}<br><br>Needs a running GroundSynth backend (address, token file = "
                "&lt;workspace&gt;/token). The area of interest is the extent, or the polygons of the AOI layer "
                "when given. Engine choice: 'segment=spectral; caption=composition'. Engine parameters: "
                "'segment.param=value; ...'. Boost targets: 'Shrub=0.3, Water=0.1'. Reference samples (points "
                "or polygons, any CRS, the class attribute a class name or a WorldCover code) are sent with the "
                "job: its report then holds the accuracy assessment of the segmentation (error matrix, overall, "
                "user's and producer's accuracy with 95 % confidence intervals).")

    def has_synthesis(self) -> bool:
        return "synthesise" in self.STAGES

    def initAlgorithm(self, config=None):
        settings = PluginSettings.load()
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster (file the backend can read)"))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Area of interest (extent)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI_LAYER, "Area of interest (polygon layer; overrides the extent)",
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        # optional with defaults: qgis_process (3.22) refuses a run that omits a mandatory band parameter even
        # when it has a default ("mandatory parameters were not specified RED, GREEN, BLUE")
        for key, label, default, optional in ((self.RED, "Red band (default 1)", 1, True),
                                              (self.GREEN, "Green band (default 2)", 2, True),
                                              (self.BLUE, "Blue band (default 3)", 3, True),
                                              (self.NIR, "NIR band (empty = automatic: band 4 of a raster with "
                                                         "4+ bands unless it is alpha, else none)", None, True)):
            self.addParameter(QgsProcessingParameterBand(key, label, default, self.INPUT, optional=optional))
        self.addParameter(QgsProcessingParameterRasterLayer(self.LABELS, "Label raster (WorldCover codes)",
                                                            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.REFERENCE, "Reference samples (points or polygons with a class attribute)",
            [QgsProcessing.SourceType.TypeVectorPoint, QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.REFERENCE_CLASS, "Reference class attribute (class name or WorldCover code)",
            parentLayerParameterName=self.REFERENCE, optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.TILE_SIZE, "Tile size (pixels)",
                                                       QgsProcessingParameterNumber.Type.Integer, 256, False, 32, 2048))
        self.addParameter(QgsProcessingParameterString(self.ENGINES, "Engines (stage=engine; ...)", "",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString(self.PARAMS, "Engine parameters (stage.param=value; ...)",
                                                       "", multiLine=True, optional=True))
        if self.has_synthesis():
            self.addParameter(QgsProcessingParameterNumber(self.VARIANTS, "Synthetic variants per tile",
                                                           QgsProcessingParameterNumber.Type.Integer, 1, False, 1, 16))
            self.addParameter(QgsProcessingParameterEnum(self.MASK_STRATEGY, "Mask strategy",
                                                         list(MASK_STRATEGIES), False, 0))
            self.addParameter(QgsProcessingParameterString(self.BOOST, "Boost targets (Class=share, ...)", "",
                                                           optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.SEED, "Seed", QgsProcessingParameterNumber.Type.Integer,
                                                       0, False, 0))
        self.addParameter(QgsProcessingParameterString(self.ADDRESS, "Backend address", settings.address))
        self.addParameter(QgsProcessingParameterFile(self.TOKEN_FILE, "Token file (<workspace>/token)",
                                                     QgsProcessingParameterFile.Behavior.File, "",
                                                     str(Path(settings.workspace) / "token"), optional=True,
                                                     fileFilter="All files (*)"))
        self.addParameter(QgsProcessingParameterFile(self.CACHE_DIR, "Download folder (remote backend)",
                                                     QgsProcessingParameterFile.Behavior.Folder, "", settings.cache_dir,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.REMOTE, "Backend on another machine (upload the raster, download the results)", False))
        self.addOutput(QgsProcessingOutputFolder(self.OUTPUT_DIR, "Job folder"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.TILES, "Tile grid", QgsProcessing.SourceType.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputRasterLayer(self.MASK, "Real mask mosaic"))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, "Report (HTML)"))
        self.addOutput(QgsProcessingOutputString(self.JOB_ID, "Job id"))
        self.addOutput(QgsProcessingOutputString(self.STATE_OUT, "Final job state"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Real tiles"))
        self.addOutput(QgsProcessingOutputNumber("OVERALL_ACCURACY", "Overall accuracy against the reference "
                                                                     "samples (0-1; only with REFERENCE)"))

    # ------------------------------------------------------------ request
    def build_request(self, parameters, context, feedback) -> JobRequest:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException("Input missing: INPUT is not a valid raster layer")
        path = layer.source().split("|")[0]
        source = self.parameterAsSource(parameters, self.AOI_LAYER, context) if parameters.get(self.AOI_LAYER) \
            else None
        bbox, wkt, crs = None, "", layer.crs()
        if source is not None:
            geoms = [f.geometry() for f in source.getFeatures() if f.hasGeometry()]
            if not geoms:
                raise QgsProcessingException("Invalid area: the AOI layer has no polygons")
            if not source.sourceCrs().isValid():
                raise QgsProcessingException("CRS mismatch: the AOI layer has no valid CRS")
            wkt, crs = QgsGeometry.unaryUnion(geoms).asWkt(), source.sourceCrs()
        elif parameters.get(self.EXTENT):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context)
            ecrs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            crs = ecrs if ecrs.isValid() else layer.crs()
            bbox = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        else:
            e = layer.extent()
            bbox = (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum())
        # empty = 0, the backend's default (band 4 of a 4+ band raster unless it is alpha): a 4-band raster
        # must not silently run in the weaker RGB-only mode
        nir = self.parameterAsInt(parameters, self.NIR, context) if parameters.get(self.NIR) not in (None, "") else 0
        labels = self.parameterAsRasterLayer(parameters, self.LABELS, context)
        engines = parse_engines(self.parameterAsString(parameters, self.ENGINES, context))
        params = parse_params(self.parameterAsString(parameters, self.PARAMS, context))
        for stage in list(engines) + list(params):
            if stage not in self.STAGES:
                raise QgsProcessingException(f"Invalid input: stage {stage!r} is not run by '{self.ALG_NAME}' "
                                             f"(it runs {', '.join(self.STAGES)})")
        stages = {s: StageChoice(engines.get(s, ""), params.get(s, {})) for s in self.STAGES}
        req = JobRequest(
            raster_path=str(Path(path).resolve()),
            red=self._band(parameters, self.RED, 1, context),
            green=self._band(parameters, self.GREEN, 2, context),
            blue=self._band(parameters, self.BLUE, 3, context),
            nir=nir if nir > 0 else 0, band_count=layer.bandCount(),
            bbox=bbox, polygon_wkt=wkt, aoi_crs=crs_text(crs) if isinstance(crs, QgsCoordinateReferenceSystem)
            and crs.isValid() else "",
            label_path=labels.source().split("|")[0] if labels is not None else "",
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
            stages=stages, seed=self.parameterAsInt(parameters, self.SEED, context), name=f"processing {self.ALG_ID}",
        )
        if self.has_synthesis():
            req.variants = self.parameterAsInt(parameters, self.VARIANTS, context)
            req.mask_strategy = MASK_STRATEGIES[self.parameterAsEnum(parameters, self.MASK_STRATEGY, context)]
            req.boost_targets = parse_targets(self.parameterAsString(parameters, self.BOOST, context))
        else:
            req.variants = 0
        req.reference_features = self._reference(parameters, context)
        return req.check()

    def _reference(self, parameters, context) -> list[dict]:
        """The reference samples as inline JobSpec features (EPSG:4326), so that a backend on this machine or
        another reads them alike; [] when none is given."""
        if not parameters.get(self.REFERENCE):
            return []
        source = self.parameterAsSource(parameters, self.REFERENCE, context)
        if source is None:
            raise QgsProcessingException("Invalid input: REFERENCE is not a vector layer")
        class_field = self.parameterAsString(parameters, self.REFERENCE_CLASS, context)
        name = source.sourceName() or "REFERENCE"
        if not class_field:
            raise QgsProcessingException(f"Invalid input: REFERENCE_CLASS, the class attribute of {name}, is missing "
                                         f"(it has: {', '.join(source.fields().names()) or 'no attributes'})")
        # a bad class value raises ReferenceError, a PluginError: processAlgorithm reports it like the others
        return inline_features(source_features(source, class_field, name, source.sourceCrs()))

    def _band(self, parameters, key: str, default: int, context) -> int:
        """A band parameter; left out or empty = `default`."""
        if parameters.get(key) in (None, ""):
            return default
        return self.parameterAsInt(parameters, key, context)

    def client(self, parameters, context) -> BackendClient:
        address = self.parameterAsString(parameters, self.ADDRESS, context).strip()
        token_file = self.parameterAsFile(parameters, self.TOKEN_FILE, context)
        token = ""
        if token_file:
            token = read_token(Path(token_file).parent) if Path(token_file).name == "token" else \
                Path(token_file).read_text(encoding="utf-8").strip()
        return BackendClient(address, token)

    # ------------------------------------------------------------ run
    def processAlgorithm(self, parameters, context, feedback):
        try:
            request = self.build_request(parameters, context, feedback)
        except PluginError as exc:
            raise QgsProcessingException(f"{exc.title}: {exc.text}") from None
        client = self.client(parameters, context)
        state = {"job_id": "", "final": "", "output_dir": "", "layers": {}, "report": "", "tiles": 0}
        cancel_sent = threading.Event()

        def send_cancel():
            if state["job_id"] and not cancel_sent.is_set():
                cancel_sent.set()
                try:
                    client.cancel(state["job_id"])
                except grpc.RpcError:
                    pass

        remote = self.parameterAsBoolean(parameters, self.REMOTE, context)
        feedback.canceled.connect(send_cancel)
        try:
            spec = request.to_proto()
            if remote:
                feedback.pushInfo(f"uploading {request.raster_path}")
                spec.upload_id = client.upload_raster(request.raster_path)
            call = client.submit(spec)
            for ev in call:
                _on_event(ev, state, feedback)
                if feedback.isCanceled():
                    send_cancel()
        except grpc.RpcError as exc:
            title, text = user_message(exc, client.address)
            raise QgsProcessingException(f"{title}: {text}") from None
        finally:
            try:
                feedback.canceled.disconnect(send_cancel)
            except TypeError:
                pass
        try:
            cache = self.parameterAsFile(parameters, self.CACHE_DIR, context) or PluginSettings.load().cache_dir
            out = self._outputs(state, ArtefactSource(state["job_id"], state["output_dir"], client=client,
                                                      cache_dir=cache, force_fetch=remote))
        except grpc.RpcError as exc:
            title, text = user_message(exc, client.address)
            raise QgsProcessingException(f"{title}: {text}") from None
        except PluginError as exc:          # e.g. UnsafeJobFile: a job file named outside the cache
            raise QgsProcessingException(f"{exc.title}: {exc.text}") from None
        finally:
            client.close()
        feedback.pushInfo(f"job {state['job_id']} ended {state['final'] or 'without a final state'}")
        return out

    def _outputs(self, state: dict, source: ArtefactSource) -> dict:
        """The algorithm's outputs; job files of a remote backend are fetched into the cache."""
        out = {self.JOB_ID: state["job_id"], self.STATE_OUT: state["final"], "TILE_COUNT": state["tiles"],
               self.OUTPUT_DIR: str(source.folder)}
        if "tiles" in state["layers"]:
            out[self.TILES] = f"{source.path(state['layers']['tiles'])}|layername=tiles"
        if "real_mask" in state["layers"]:
            out[self.MASK] = str(source.path(state["layers"]["real_mask"]))
        if state["report"]:
            out[self.REPORT] = str(source.path(state["report"]))
        if "ref_overall_accuracy" in state.get("summary", {}):
            out["OVERALL_ACCURACY"] = state["summary"]["ref_overall_accuracy"]
        return out


def _on_event(ev, state: dict, feedback) -> None:
    """Record one JobEvent in `state` and report it to the Processing feedback."""
    which = ev.WhichOneof("event")
    if which == "accepted":
        state.update(job_id=ev.accepted.job_id, output_dir=ev.accepted.output_dir, tiles=ev.accepted.tile_count)
        feedback.pushInfo(f"job {ev.accepted.job_id}: {ev.accepted.tile_count} tile(s) in {ev.accepted.output_dir}")
    elif which == "progress":
        p = ev.progress
        feedback.setProgressText(f"{p.stage} {p.done}/{p.total}")
        if p.total:
            feedback.setProgress(100.0 * p.done / p.total)
    elif which == "layer":
        state["layers"][ev.layer.layer] = ev.layer.path
    elif which == "report":
        state["report"] = ev.report.html_path
        state["summary"] = dict(ev.report.summary)
        if "ref_overall_accuracy" in state["summary"]:
            feedback.pushInfo(f"overall accuracy against the reference samples: "
                              f"{100 * state['summary']['ref_overall_accuracy']:.1f} %")
    elif which == "failed":
        if ev.failed.tile_id:
            feedback.reportError(f"tile {ev.failed.tile_id}: {ev.failed.message}")
        else:
            state["final"] = "FAILED"
            raise QgsProcessingException(f"Job failed: {ev.failed.message}")
    elif which == "done":
        state["final"] = state_name(ev.done.state)
        state["output_dir"] = ev.done.output_dir or state["output_dir"]


class SegmentAlgorithm(GroundSynthAlgorithm):
    STAGES = ("segment",)
    ALG_ID, ALG_NAME = "segment", "Segment"
    HELP = "Segments every tile into the 7 land-cover classes (mask mosaic + tile grid with class shares)."


class SynthesiseAlgorithm(GroundSynthAlgorithm):
    STAGES = ("segment", "synthesise")
    ALG_ID, ALG_NAME = "synthesise", "Synthesise"
    HELP = "Segments, then synthesises new imagery from the masks (runs segment first)."


class CaptionAlgorithm(GroundSynthAlgorithm):
    STAGES = ("segment", "caption")
    ALG_ID, ALG_NAME = "caption", "Caption"
    HELP = "Segments, then captions every tile (captions are tile-grid attributes; runs segment first)."


class GroundAlgorithm(GroundSynthAlgorithm):
    STAGES = ("segment", "caption", "ground")
    ALG_ID, ALG_NAME = "ground", "Ground"
    HELP = "Segments, captions and grounds every tile (scores as tile-grid attributes)."


ALGORITHMS = (GroundSynthAlgorithm, SegmentAlgorithm, SynthesiseAlgorithm, CaptionAlgorithm, GroundAlgorithm)
