"""watch --config: validation with key paths, ${ENV} secrets, CLI overrides, --print-config redaction, the schema."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pydantic")
import yaml  # noqa: E402

from fakewatch.runtime.config import (SCHEMA_PATH, ConfigError, WatchFile, load_config, merge_args,  # noqa: E402
                                      schema_text)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "cameras.yaml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cameras.yaml"
    p.write_text(text)
    return p


def test_every_problem_is_reported_with_its_key_path(tmp_path):
    p = write(tmp_path, """
decision: {window: 3 parsecs, agregate: mean}
cameras:
  lobby: {source: demo, detect: {evry: 3}}
mqtt: {url: "http://broker", password: "${FW_TEST_UNSET_PW}"}
webhooks:
  - {url: "ftp://x"}
metrics: {port: 70000}
""")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    lines = e.value.problems
    text = str(e.value)
    assert text.startswith(f"{p}: 7 problems")
    assert any(ln.startswith("mqtt.password: environment variable FW_TEST_UNSET_PW is not set") for ln in lines)
    assert any(ln.startswith("decision.agregate: unknown key; valid keys here: window, aggregate") for ln in lines)
    assert any(ln.startswith("decision.window: --window '3 parsecs'") for ln in lines)
    assert "cameras.lobby.detect.evry: unknown key; valid keys here: every" in lines
    assert any(ln.startswith("mqtt.url: 'http://broker': expected mqtt://") for ln in lines)
    assert any(ln.startswith("webhooks.0.url: 'ftp://x': expected http(s)://") for ln in lines)
    assert any(ln.startswith("metrics.port: Input should be less than or equal to 65535") for ln in lines)


def test_bad_camera_names_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"cameras: .*'front door'.*letters, digits"):
        load_config(write(tmp_path, "cameras: {'front door': {source: demo}}"), env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "cameras: [unclosed"), env={})
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), env={})
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_env_secrets_are_substituted_and_printed_as_references(tmp_path):
    p = write(tmp_path, """
cameras:
  door: {source: "rtsp://admin:${FW_CAM_PW}@10.0.0.9/live"}
mqtt: {host: broker.lan, user: fw, password: "${FW_MQTT_PW}"}
webhooks:
  - {url: "https://hooks.example/x?token=abc", secret: literal-secret, headers: {Authorization: Bearer t0k}}
""")
    env = {"FW_CAM_PW": "s3cr3t", "FW_MQTT_PW": "hunter2"}
    cfg, refs = load_config(p, env=env)
    assert cfg.cameras["door"].source == "rtsp://admin:s3cr3t@10.0.0.9/live"
    assert cfg.mqtt.settings().password == "hunter2"
    assert cfg.webhooks[0].settings().secret == "literal-secret"
    from fakewatch.runtime.config import dump_yaml

    text = dump_yaml(cfg, refs)
    for secret in ("s3cr3t", "hunter2", "literal-secret", "t0k", "abc"):
        assert secret not in text
    shown = yaml.safe_load(text)
    assert shown["cameras"]["door"]["source"] == "rtsp://admin:${FW_CAM_PW}@10.0.0.9/live"
    assert shown["mqtt"]["password"] == "${FW_MQTT_PW}"
    assert shown["webhooks"][0]["secret"] == "***"
    assert shown["webhooks"][0]["headers"] == {"Authorization": "***"}
    assert shown["webhooks"][0]["url"] == "https://hooks.example/x?token=***"


def test_flags_override_the_file_and_print_config(tmp_path, capsys):
    from fakewatch.cli import main

    p = write(tmp_path, """
decision: {window: 4s, min_duration: 2.5}
detect: {every: 3}
cameras:
  lobby: {source: demo}
  yard: {source: demo, enabled: false}
mqtt: {url: "mqtt://127.0.0.1:1883/fw"}
""")
    assert main(["watch", "--config", str(p), "--window", "2s", "--mqtt", "mqtt://10.1.1.1/other",
                 "--metrics-port", "9200", "--webhook", "http://127.0.0.1:9/h", "extra.mp4", "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["decision"] == {"window": "2s", "aggregate": "confident", "min_duration": 2.5}
    assert shown["detect"]["every"] == 3                 # not given on the command line: the file's value
    assert shown["mqtt"]["url"] == "mqtt://10.1.1.1/other"
    assert shown["metrics"] == {"port": 9200, "host": "0.0.0.0"}
    assert [w["url"] for w in shown["webhooks"]] == ["http://127.0.0.1:9/h"]
    assert list(shown["cameras"]) == ["lobby", "yard", "extra"]
    assert shown["cameras"]["yard"]["enabled"] is False
    # a flag given with its default value still overrides the file
    assert main(["watch", "--config", str(p), "--min-duration", "1.0", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["decision"]["min_duration"] == 1.0
    # a section the file leaves null is created by its flag
    (tmp_path / "null.yaml").write_text("metrics: null\nmqtt: null\n")
    assert main(["watch", "--config", str(tmp_path / "null.yaml"), "--metrics-port", "9300", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["metrics"]["port"] == 9300
    # without a file the flags alone make the config
    assert main(["watch", "--print-config", "--stale-after", "5", "--max-retries", "2"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["stale_after"], shown["max_retries"], shown.get("cameras")) == (5.0, 2, {})


def test_cli_reports_config_problems_in_one_error(tmp_path, capsys):
    from fakewatch.cli import main

    p = write(tmp_path, "cameras: {lobby: {source: demo, enabeld: true}}\nmetrics: {prot: 1}\n")
    assert main(["watch", "--config", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"fakewatch watch: error: {p}: 2 problems" in err
    assert "cameras.lobby.enabeld: unknown key" in err and "metrics.prot: unknown key" in err
    assert main(["watch", "--batch", "0", "--mqtt", "mqtt//nohost", "--print-config"]) == 1
    assert "--batch: Input should be greater than or equal to 1 (got 0)" in capsys.readouterr().err
    assert main(["watch", "--mqtt", "mqtt//nohost", "--print-config"]) == 1
    assert "--mqtt: 'mqtt//nohost': expected mqtt://" in capsys.readouterr().err


def test_committed_schema_is_current_and_validates_the_example():
    jsonschema = pytest.importorskip("jsonschema")
    assert SCHEMA_PATH.read_text() == schema_text(), \
        "docs/config.schema.json is stale: run `python -m fakewatch.runtime.config --schema`"
    schema = json.loads(SCHEMA_PATH.read_text())
    example = yaml.safe_load(EXAMPLE.read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "cameras": {"x": {"sorce": "demo"}}}, schema)
    cfg, _refs = load_config(EXAMPLE, env={"FAKEWATCH_MQTT_PASSWORD": "pw", "FAKEWATCH_WEBHOOK_SECRET": "s",
                                           "LOBBY_CAM_PASSWORD": "c"})
    assert isinstance(cfg, WatchFile) and cfg.enabled_cameras()


def test_backend_choices_match_the_runtime():
    from typing import get_args

    from fakewatch.runtime.backends import BACKENDS

    ann = WatchFile.model_fields["backend"].annotation
    assert set(get_args(get_args(ann)[0])) == set(BACKENDS)


def test_merge_names_command_line_sources(tmp_path):
    import argparse

    args = argparse.Namespace(config=None, sources=["demo", "demo", "rtsp://u:p@cam.lan/s", "/x/clip 1.mp4"],
                              webhook=None, no_pace=False)
    cfg, _refs, names = merge_args(args, set(), env={})
    assert list(cfg.cameras) == ["demo", "demo-2", "cam_lan", "clip_1"]
    assert names == set(cfg.cameras)


def test_unusable_outputs_are_one_line_errors(tmp_path, capsys):
    from fakewatch.cli import main

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["watch", "--snapshots", str(afile), "--no-live", "--duration", "0.1"]) == 1
    assert f"--snapshots {afile}: exists and is not a directory" in capsys.readouterr().err
    assert main(["watch", "--snapshots", str(afile / "sub"), "--no-live", "--duration", "0.1"]) == 1
    assert f"--snapshots {afile / 'sub'}: cannot use it" in capsys.readouterr().err


def test_a_triton_face_detector_url_in_the_file_stays_a_url(tmp_path):
    import argparse

    from fakewatch.runtime.config import load_config
    from fakewatch.runtime.watch_cli import apply_config

    p = write(tmp_path, 'detect: {face_detector: "grpc://gpu-host:8001/face_detector"}\ncameras: {a: {source: demo}}\n')
    args = argparse.Namespace()
    apply_config(load_config(p)[0], args)
    assert args.face_detector == "grpc://gpu-host:8001/face_detector"      # not Path()'s "grpc:/gpu-host..."
    p2 = write(tmp_path, 'detect: {face_detector: "models/blazeface_short.onnx"}\ncameras: {a: {source: demo}}\n')
    apply_config(load_config(p2)[0], args)
    assert args.face_detector == Path("models/blazeface_short.onnx")


def test_triton_section_reaches_the_watch_flags_and_checks_the_url(tmp_path, capsys):
    import argparse

    from fakewatch.cli import main
    from fakewatch.runtime.watch_cli import apply_config

    p = write(tmp_path, 'backend: triton\ntriton: {url: "gpu-host:9001", model: fw, shm: "off", stream: true}\n'
                        'cameras: {a: {source: demo}}\n')
    args = argparse.Namespace()
    apply_config(load_config(p)[0], args)
    assert (args.backend, args.triton_url, args.triton_model, args.triton_shm, args.triton_stream) == \
        ("triton", "grpc://gpu-host:9001", "fw", "off", True)
    assert main(["watch", "--config", str(p), "--triton-model", "other", "--no-triton-stream", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["triton"] == {"url": "grpc://gpu-host:9001", "model": "other",
                                                                 "shm": "off", "stream": False}
    bad = write(tmp_path, 'triton: {url: "http://gpu-host:8000", shm: maybe}\n')
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    text = str(e.value)
    assert "triton.url:" in text and "8000 is Triton's HTTP port" in text and "triton.shm:" in text
