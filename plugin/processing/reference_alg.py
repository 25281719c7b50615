"""Processing: write reference samples (points or polygons with a class attribute, any CRS) to the GeoJSON file
the backend's accuracy assessment reads (`groundsynth run --reference FILE`); see plugin/reference.py."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
)

from ..reference import ReferenceError, source_features, write_geojson


class WriteReferenceAlgorithm(QgsProcessingAlgorithm):
    INPUT, CLASS_FIELD, OUTPUT, COUNT = "INPUT", "CLASS_FIELD", "OUTPUT", "COUNT"

    def createInstance(self):
        return type(self)()

    def name(self):
        return "writereference"

    def displayName(self):
        return "Write reference samples"

    def group(self):
        return "Reference data"

    def groupId(self):
        return "reference"

    def shortHelpString(self):
        return ("Writes points or polygons with a class attribute (a class name: Tree, Shrub, Grass, Crop, Built-up, "
                "Barren, Water; or an ESA WorldCover code 10 ... 100), in any CRS, to a GeoJSON file in EPSG:4326 "
                "for the backend's accuracy assessment (<code>groundsynth run --reference FILE</code>). The "
                "attributes id, split, stratum and stratum_size are kept when present. Use 'Selected features "
                "only' of the input for a subset. Write it under the backend's workspace or an allowed root.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.INPUT, "Reference samples (points or polygons)",
            [QgsProcessing.SourceType.TypeVectorPoint, QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField(self.CLASS_FIELD, "Class attribute (name or WorldCover code)",
                                                      parentLayerParameterName=self.INPUT))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Reference GeoJSON",
                                                                "GeoJSON files (*.geojson)"))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Samples written"))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException("INPUT: no reference layer")
        class_field = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        dest = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        try:
            features = source_features(source, class_field, source.sourceName() or "INPUT", source.sourceCrs())
            path = write_geojson(features, dest, source.sourceName() or "INPUT")
        except ReferenceError as exc:
            raise QgsProcessingException(f"{exc.title}: {exc.text}") from None
        feedback.pushInfo(f"wrote {len(features)} reference sample(s) to {path}")
        return {self.OUTPUT: str(path), self.COUNT: len(features)}
