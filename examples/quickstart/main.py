"""The README's quickstart, runnable: a scikit-learn model wrapped by modelotel."""

import os
import socket
from urllib.parse import urlsplit

import numpy as np
from sklearn.linear_model import LogisticRegression

import modelotel

endpoint = urlsplit(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"))
with socket.socket() as probe:
    unreachable = probe.connect_ex((endpoint.hostname or "localhost", endpoint.port or 4318))
if unreachable:
    print(f"No collector at {endpoint.geturl()}: spans and metrics go to the console instead.")
    from opentelemetry import metrics, trace
    from opentelemetry.sdk import metrics as sdk_metrics
    from opentelemetry.sdk import trace as sdk_trace
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    tracer_provider = sdk_trace.TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)  # configure() attaches to providers already set
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter())
    metrics.set_meter_provider(sdk_metrics.MeterProvider(metric_readers=[reader]))

# the quickstart (14 lines of code)
rng = np.random.default_rng(0)
X_train = rng.normal(size=(1000, 3))
y_train = X_train[:, 0] + X_train[:, 1] > 0
model = LogisticRegression().fit(X_train, y_train)
baseline = modelotel.Baseline.from_data(X_train, outputs=model.predict(X_train),
                                        feature_names=["tenure", "charges", "calls"])

modelotel.configure(service_name="quickstart")  # OTLP to localhost:4318 (OTEL_* apply)
clf = modelotel.wrap(model, model="churn", version="1", baseline=baseline)

for _ in range(20):  # serving: a span per call; statistics and drift as metrics
    X = rng.normal(size=(50, 3))
    clf.predict(X)
    clf.predict_proba(X)
modelotel.shutdown()  # flush what is buffered (at exit it also happens by itself)
print("20 predict and 20 predict_proba calls made on model churn@1")
