"""Hosts & GPUs: node-exporter (compose profile node) and NVIDIA DCGM exporter (compose profile gpu)."""

# ruff: noqa: E501 - PromQL, TraceQL and LogQL stay whole on one line each so they read as queries

from __future__ import annotations

from common import Var, new_dashboard, q, sel, ts
from grafana_foundation_sdk.builders import dashboard as dash

NODE = sel('instance=~"$node"')
GPU = sel('Hostname=~"$gpu_host"', 'gpu=~"$gpu"')
HOST_VARS = [
    Var("node", "Node", "instance", "node_uname_info", "node-exporter instance (compose profile node)"),
    Var("gpu_host", "GPU host", "Hostname", "DCGM_FI_DEV_FB_USED", "Hostname label of dcgm-exporter"),
    Var("gpu", "GPU", "gpu", "DCGM_FI_DEV_FB_USED", "GPU index on the host (dcgm-exporter gpu label)"),
]
IDLE = sel('mode="idle"', 'instance=~"$node"')
BY_GPU = "Hostname, gpu, modelName"
GPU_LEGEND = "{{Hostname}} GPU {{gpu}} {{modelName}}"


def build() -> dash.Dashboard:
    d = new_dashboard(
        "llm-hosts-gpus",
        "The machines under the models and the pipeline: node-exporter (CPU, memory, disk, network) and the "
        "NVIDIA DCGM exporter (utilisation, framebuffer memory, temperature, power).",
        HOST_VARS,
    )
    d = d.with_row(dash.Row("Hosts (node-exporter)"))
    d = d.with_panel(
        ts(
            "CPU busy",
            "Which share of each node's CPU time is not idle?",
            [
                q(
                    f"1 - avg by (instance) (rate(node_cpu_seconds_total{IDLE}[$__rate_interval]))",
                    "{{instance}}",
                )
            ],
            unit="percentunit",
        )
    )
    fs = sel('instance=~"$node"', 'fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"')
    for title, description, free, total, legend in [
        (
            "Memory used",
            "Which share of each node's memory is in use (1 - MemAvailable / MemTotal)?",
            f"node_memory_MemAvailable_bytes{NODE}",
            f"node_memory_MemTotal_bytes{NODE}",
            "{{instance}}",
        ),
        (
            "Disk used",
            "Which share of each real filesystem is full?",
            f"node_filesystem_avail_bytes{fs}",
            f"node_filesystem_size_bytes{fs}",
            "{{instance}} {{mountpoint}}",
        ),
    ]:
        d = d.with_panel(ts(title, description, [q(f"1 - {free} / {total}", legend)], unit="percentunit"))
    nic = sel('instance=~"$node"', 'device!="lo"')
    d = d.with_panel(
        ts(
            "Network throughput",
            "How many bytes per second does each node receive and send (loopback excluded)?",
            [
                q(
                    f"sum by (instance) (rate(node_network_receive_bytes_total{nic}[$__rate_interval]))",
                    "{{instance}} in",
                    ref="A",
                ),
                q(
                    f"sum by (instance) (rate(node_network_transmit_bytes_total{nic}[$__rate_interval]))",
                    "{{instance}} out",
                    ref="B",
                ),
            ],
            unit="Bps",
        )
    )
    d = d.with_row(dash.Row("GPUs (dcgm-exporter)"))
    d = d.with_panel(
        ts(
            "GPU utilisation",
            "How busy is each GPU? DCGM_FI_DEV_GPU_UTIL (default counters, percent of time a kernel ran) or, "
            "with the profiling counter set, DCGM_FI_PROF_GR_ENGINE_ACTIVE (share of cycles the graphics/compute "
            "engine was active).",
            [
                q(
                    f"max by ({BY_GPU}) (DCGM_FI_DEV_GPU_UTIL{GPU}) / 100 or max by ({BY_GPU}) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU})",
                    GPU_LEGEND,
                )
            ],
            unit="percentunit",
        )
    )
    d = d.with_panel(
        ts(
            "Framebuffer memory used",
            "Which share of each GPU's memory is allocated (FB_USED / (FB_USED + "
            "FB_FREE))? Near 1 = no room for a bigger batch or KV cache.",
            [
                q(
                    f"max by ({BY_GPU}) (DCGM_FI_DEV_FB_USED{GPU}) / (max by ({BY_GPU}) (DCGM_FI_DEV_FB_USED{GPU}) + "
                    f"max by ({BY_GPU}) (DCGM_FI_DEV_FB_FREE{GPU}))",
                    GPU_LEGEND,
                )
            ],
            unit="percentunit",
        )
    )
    for title, description, metric, unit in [
        (
            "GPU temperature",
            "How hot is each GPU (DCGM_FI_DEV_GPU_TEMP, °C)?",
            "DCGM_FI_DEV_GPU_TEMP",
            "celsius",
        ),
        (
            "GPU power",
            "How much power does each GPU draw (DCGM_FI_DEV_POWER_USAGE, W)?",
            "DCGM_FI_DEV_POWER_USAGE",
            "watt",
        ),
    ]:
        d = d.with_panel(
            ts(title, description, [q(f"max by ({BY_GPU}) ({metric}{GPU})", GPU_LEGEND)], unit=unit)
        )
    return d
