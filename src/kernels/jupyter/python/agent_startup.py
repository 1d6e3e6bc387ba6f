"""Run silently by sandbox-agent in every IPython kernel it starts, in a namespace of its own.

- Registers the module ``_sandbox_agent`` with the helpers the agent calls around executions
  (environment variables in and out, changing directory), all reading values from files the agent
  wrote, so no caller-supplied text is ever part of code.
- Turns IPython's colours off: tracebacks travel as text.
- Moves the socket through which forked children send their output off TCP (see _private_subprocess_pipe).
- Adds two display formats: matplotlib figures as chart data (next to their PNG) and pandas
  DataFrames as a Table Schema data resource.

Nothing heavy is imported here: matplotlib and pandas are looked at only once the user imports them.
"""

import importlib.machinery
import json
import math
import os
import re
import sys
import types

CHART_MIME = "application/vnd.sandbox-agent.chart+json"
DATA_MIME = "application/vnd.dataresource+json"
# Bigger frames are still shown as text/html; shipping them whole as data would swamp the stream.
DATA_MAX_CELLS = 100_000


# --- per-execution environment and working directory ---------------------------------------------

_saved_env = []


def push_env(path):
    with open(path, encoding="utf-8") as handle:
        values = json.load(handle)
    os.unlink(path)
    _saved_env.append({name: os.environ.get(name) for name in values})
    os.environ.update(values)


def pop_env():
    while _saved_env:
        for name, old in _saved_env.pop().items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def chdir_from(path):
    with open(path, encoding="utf-8") as handle:
        target = json.load(handle)
    os.unlink(path)
    os.chdir(target)


# --- box plots: their statistics are gone once drawn, so keep them as boxplot() makes them --------

def _patch_axes(axes_module):
    axes_class = axes_module.Axes
    if getattr(axes_class.bxp, "_sandbox_agent", False):
        return
    original = axes_class.bxp

    def bxp(self, bxpstats, positions=None, *args, **kwargs):
        artists = original(self, bxpstats, positions, *args, **kwargs)
        try:
            stats = list(bxpstats)
            places = list(positions) if positions is not None else list(range(1, len(stats) + 1))
            medians = artists.get("medians", [])
            recorded = getattr(self, "_sandbox_agent_boxes", [])
            for index, stat in enumerate(stats):
                label = stat.get("label")
                if label is None:
                    label = _number_text(places[index]) if index < len(places) else str(index + 1)
                recorded.append({
                    "median_line": medians[index] if index < len(medians) else None,
                    "label": str(label),
                    "min": stat["whislo"],
                    "first_quartile": stat["q1"],
                    "median": stat["med"],
                    "third_quartile": stat["q3"],
                    "max": stat["whishi"],
                    "outliers": [float(value) for value in stat.get("fliers", [])],
                })
            self._sandbox_agent_boxes = recorded
        except Exception:  # never break the user's plot for the sake of chart data
            pass
        return artists

    bxp._sandbox_agent = True
    axes_class.bxp = bxp


class _PatchOnImport:
    """A one-shot import hook: patches matplotlib.axes right after it is first imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.axes":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            try:
                _patch_axes(module)
            except Exception:
                pass

        spec.loader.exec_module = exec_module
        return spec


# --- matplotlib figures as chart data -------------------------------------------------------------

_UNIT = re.compile(r"[\(\[]\s*([^\)\]]+?)\s*[\)\]]\s*$")


def _number_text(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _finite(value):
    """JSON has no NaN or infinity: those travel as text."""
    number = float(value)
    return number if math.isfinite(number) else str(number)


def _unit(label):
    match = _UNIT.search(label or "")
    return match.group(1) if match else ""


def _axis_kind(axis):
    """'datetime', 'categorical' or the axis scale name ('linear', 'log', ...)."""
    units = getattr(axis, "units", None)
    if units is not None and hasattr(units, "_mapping"):
        return "categorical"
    formatter = axis.get_major_formatter()
    dates = sys.modules.get("matplotlib.dates")
    if dates is not None and isinstance(formatter, (dates.DateFormatter, dates.AutoDateFormatter, dates.ConciseDateFormatter)):
        return "datetime"
    return axis.get_scale()


def _axis_value(axis, kind, value):
    if kind == "categorical":
        names = {index: name for name, index in axis.units._mapping.items()}
        return str(names.get(int(round(float(value))), _number_text(value)))
    if kind == "datetime":
        try:
            return sys.modules["matplotlib.dates"].num2date(float(value)).isoformat()
        except Exception:
            return _finite(value)
    return _finite(value)


def _tick_label(axis, kind, position):
    """The text shown under a bar: its category, the label the user set for it, or its position."""
    if kind in ("categorical", "datetime"):
        return str(_axis_value(axis, kind, position))
    ticker = sys.modules.get("matplotlib.ticker")
    if ticker is not None and isinstance(axis.get_major_formatter(), ticker.FixedFormatter):
        try:
            for location, text in zip(axis.get_ticklocs(), axis.get_ticklabels()):
                if abs(location - position) < 1e-9 and text.get_text():
                    return text.get_text()
        except Exception:
            pass
    return _number_text(float(position))


def _label(artist):
    label = artist.get_label()
    return "" if label is None or str(label).startswith("_") else str(label)


def _title(ax):
    for loc in ("center", "left", "right"):
        title = ax.get_title(loc=loc)
        if title:
            return title
    return ""


def _axes_extra(ax, x_kind, y_kind):
    x_label, y_label = ax.get_xlabel(), ax.get_ylabel()
    return {
        "x_label": x_label,
        "y_label": y_label,
        "x_unit": _unit(x_label),
        "y_unit": _unit(y_label),
        "x_scale": x_kind,
        "y_scale": y_kind,
    }


def _pie(ax, wedges):
    return {
        "type": "pie",
        "title": _title(ax),
        "elements": [
            {"label": _label(wedge), "angle": round(float(wedge.theta2 - wedge.theta1), 6), "radius": float(wedge.r)}
            for wedge in wedges
        ],
        "extra": {},
    }


def _boxes(ax, boxes, x_kind, y_kind):
    return {
        "type": "box_and_whisker",
        "title": _title(ax),
        "elements": [
            {key: value for key, value in box.items() if key != "median_line"} for box in boxes
        ],
        "extra": _axes_extra(ax, x_kind, y_kind),
    }


def _bars(ax, containers, x_kind, y_kind):
    elements = []
    for container in containers:
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        group = _label(container)
        for patch in container.patches:
            if horizontal:
                position = patch.get_y() + patch.get_height() / 2
                label, value = _tick_label(ax.yaxis, y_kind, position), patch.get_width()
            else:
                position = patch.get_x() + patch.get_width() / 2
                label, value = _tick_label(ax.xaxis, x_kind, position), patch.get_height()
            elements.append({"label": label, "group": group, "value": _number_text(float(value))})
    return {"type": "bar", "title": _title(ax), "elements": elements, "extra": _axes_extra(ax, x_kind, y_kind)}


def _points(ax, lines, collections, x_kind, y_kind):
    def series(label, pairs):
        return {
            "label": label,
            "points": [
                [_axis_value(ax.xaxis, x_kind, x), _axis_value(ax.yaxis, y_kind, y)] for x, y in pairs
            ],
        }

    elements = [series(_label(line), line.get_xydata()) for line in lines]
    elements += [series(_label(collection), collection.get_offsets()) for collection in collections]
    return {
        "type": "line" if lines else "scatter",
        "title": _title(ax),
        "elements": elements,
        "extra": _axes_extra(ax, x_kind, y_kind),
    }


def _chart_of_axes(ax):
    patches = sys.modules["matplotlib.patches"]
    containers = sys.modules["matplotlib.container"]
    collections = sys.modules["matplotlib.collections"]
    x_kind, y_kind = _axis_kind(ax.xaxis), _axis_kind(ax.yaxis)

    wedges = [patch for patch in ax.patches if isinstance(patch, patches.Wedge)]
    if wedges:
        return _pie(ax, wedges)
    boxes = [box for box in getattr(ax, "_sandbox_agent_boxes", []) if box["median_line"] in ax.lines]
    if boxes:
        return _boxes(ax, boxes, x_kind, y_kind)
    bars = [container for container in ax.containers if isinstance(container, containers.BarContainer)]
    if bars:
        return _bars(ax, bars, x_kind, y_kind)
    lines = [line for line in ax.get_lines() if len(line.get_xydata()) > 0]
    scatters = [
        collection for collection in ax.collections
        if isinstance(collection, collections.PathCollection) and len(collection.get_offsets()) > 0
    ]
    if lines or scatters:
        return _points(ax, lines, scatters, x_kind, y_kind)
    return None


def chart_of_figure(figure):
    try:
        axes = [ax for ax in figure.get_axes() if getattr(ax, "_colorbar", None) is None and ax.get_visible()]
        charts = [chart for chart in (_chart_of_axes(ax) for ax in axes) if chart is not None]
        if not charts:
            return None
        if len(charts) == 1:
            return charts[0]
        suptitle = getattr(figure, "_suptitle", None)
        return {
            "type": "superchart",
            "title": suptitle.get_text() if suptitle is not None else "",
            "elements": charts,
            "extra": {},
        }
    except Exception:  # chart data is a bonus: the figure's image still goes out
        return None


def data_of_frame(frame):
    try:
        if len(frame) * max(1, len(frame.columns)) > DATA_MAX_CELLS:
            return None
        return json.loads(frame.to_json(orient="table", date_format="iso", default_handler=str))
    except Exception:
        return None


# --- no TCP port: the pipe for output of forked children ------------------------------------------

def _private_subprocess_pipe(kernel_app):
    """ipykernel (6.x) gathers what forked children print through a ZeroMQ PULL socket bound to a
    random TCP port of 127.0.0.1, which every local user can connect to (messages are only taken
    with a random token, but the kernel must not listen where others reach it at all). The agent
    starts kernels with Unix sockets in a directory private to the kernel's user: this rebinds the
    pipe there, next to them, as `<ip>-pipe`, and points children forked from now on at it.
    """
    if getattr(kernel_app, "transport", None) != "ipc":
        return
    thread = getattr(kernel_app, "iopub_thread", None)
    needed = ("_pipe_in", "_handle_pipe_msg", "_setup_pipe_out", "io_loop", "socket")
    if thread is None or not all(hasattr(thread, name) for name in needed) or thread._pipe_in is None:
        return
    import threading

    import zmq
    from zmq.eventloop.zmqstream import ZMQStream

    endpoint = "ipc://%s-pipe" % kernel_app.ip
    done = threading.Event()
    failure = []

    def swap():
        # On the IOPub thread: its event loop owns the streams.
        try:
            pipe_in = thread.socket.context.socket(zmq.PULL)
            pipe_in.linger = 0
            pipe_in.bind(endpoint)
            old, thread._pipe_in = thread._pipe_in, ZMQStream(pipe_in, thread.io_loop)
            thread._pipe_in.on_recv(thread._handle_pipe_msg)
            old.close()
        except Exception as err:  # the kernel keeps its TCP pipe rather than losing children's output
            failure.append(err)
        finally:
            done.set()

    def setup_pipe_out():
        context = zmq.Context()
        pipe_out = context.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(endpoint)
        return context, pipe_out

    thread.io_loop.add_callback(swap)
    if done.wait(10) and not failure:
        thread._setup_pipe_out = setup_pipe_out


# --- wiring into IPython --------------------------------------------------------------------------

def _register_formatters(shell):
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    def formatter(mime, module, name, function):
        class JsonDisplayFormatter(BaseFormatter):
            format_type = Unicode(mime)
            print_method = ObjectName("_repr_sandbox_agent_never_")
            _return_type = (dict,)

            def pop(self, typ, default=None):
                # IPython's inline backend clears every formatter's Figure entry when it starts
                # (pylabtools.select_figure_formats); this one must survive that.
                return default

        instance = JsonDisplayFormatter(parent=shell.display_formatter)
        instance.for_type_by_name(module, name, function)
        shell.display_formatter.formatters[mime] = instance

    formatter(CHART_MIME, "matplotlib.figure", "Figure", chart_of_figure)
    formatter(DATA_MIME, "pandas.core.frame", "DataFrame", data_of_frame)


def _setup():
    module = types.ModuleType("_sandbox_agent")
    module.push_env, module.pop_env, module.chdir_from = push_env, pop_env, chdir_from
    module.chart_of_figure, module.data_of_frame = chart_of_figure, data_of_frame
    sys.modules["_sandbox_agent"] = module

    if "matplotlib.axes" in sys.modules:
        _patch_axes(sys.modules["matplotlib.axes"])
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())

    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    shell.run_line_magic("colors", "NoColor")
    _register_formatters(shell)
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return
    if IPKernelApp.initialized():
        _private_subprocess_pipe(IPKernelApp.instance())


_setup()
