"""Type hints and documentation of the mjpeg_server module (written in Rust)."""

from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union, final

from typing_extensions import disjoint_base

__all__ = ["Chart", "Server", "Stream", "__version__"]
__version__: str

@final
class Server:
    """An MJPEG server: named streams, their sources, and the HTTP server
    that serves them from threads of its own (no asyncio needed).

    Every keyword argument left out takes the command line's default::

        server = Server(listen="127.0.0.1:8080")   # port 0 picks a free port
        server.start()
        plot = server.stream("plot")
        plot.publish(frame)
        server.stop()

    or ``with Server(...) as server:``, which starts and stops it.
    """

    def __new__(
        cls,
        listen: Union[str, int, None] = None,
        *,
        fps: Optional[float] = None,
        quality: Optional[int] = None,
        users: Optional[Mapping[str, str]] = None,
        tokens: Optional[Sequence[str]] = None,
        public: Optional[Sequence[str]] = None,
        realm: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        max_connections: Optional[int] = None,
        max_connections_per_address: Optional[int] = None,
        max_clients_per_stream: Optional[int] = None,
        max_frame_size: Optional[int] = None,
        max_pixels: Optional[int] = None,
        allow_create: bool = False,
        allow_origin: Optional[Sequence[str]] = None,
        write_timeout: Optional[float] = None,
        push_idle_timeout: Optional[float] = None,
        shutdown_grace: Optional[float] = None,
        max_variants: Optional[int] = None,
    ) -> Server:
        """Checks the options; nothing listens until ``start()``.

        Args:
            listen: ``"ADDR:PORT"`` (``"0.0.0.0:8080"`` for every interface,
                ``"[::1]:8080"``, ``"localhost:8080"``), a port number (on
                127.0.0.1), or ``"unix:PATH"``. Port 0 picks a free port.
                Default (None): ``"127.0.0.1:8080"``.
            fps: frames per second of sources that set their own pace
                (``dir:``, relayed snapshots). Default 10.
            quality: JPEG quality (1–100) of images converted from other
                formats by sources. Default 85.
            users: HTTP Basic users, ``{"name": "password"}``, who may watch
                and push every stream. With users or tokens, only they may
                watch (but see ``public``).
            tokens: bearer tokens (``Authorization: Bearer T`` or
                ``?token=T``) that may watch and push every stream.
            public: stream names or patterns (``"cam*"``, ``"*"``) that
                anyone may watch even when users or tokens are set.
            realm: named in the browser's login prompt. Default
                ``"mjpeg-server"``.
            tls_cert: PEM certificate chain: serve HTTPS (and HTTP/2).
            tls_key: PEM private key of ``tls_cert``.
            max_connections: most connections at once. Default 4096.
            max_connections_per_address: most connections from one client
                address; 0 for no limit. Default 256.
            max_clients_per_stream: most viewers of one stream; 0 for no
                limit. Default 0.
            max_frame_size: largest frame in bytes that a source or push
                may deliver. Default 16 MiB.
            max_pixels: most pixels an image may have. Default 50 000 000.
            allow_create: let a push to an unknown name create the stream.
            allow_origin: origins whose pages may fetch the streams from
                scripts (CORS), or ``["*"]``.
            write_timeout: seconds a viewer may stop reading before it is
                dropped; 0 for never. Default 10.
            push_idle_timeout: seconds a push may send nothing before it
                is closed; 0 for never. Default 30.
            shutdown_grace: seconds ``stop()`` waits for viewers' streams
                to end. Default 5.
            max_variants: most variants of one stream (``?width=``,
                ``?height=``, ``?quality=``) made at a time; 0 turns them
                off. Default 8.

        Raises:
            ValueError: an option is out of range or malformed (the message
                names it), or a TLS file cannot be loaded.
        """
    def start(self) -> None:
        """Binds the address and serves from the server's own threads;
        returns at once. Starts every stream's source.

        Raises:
            OSError: the address is in use (the message names it) or
                cannot be bound.
            RuntimeError: the server is already running.
        """
    def stop(self) -> None:
        """Stops serving: ends every viewer's stream (waiting up to
        ``shutdown_grace`` seconds), stops the sources, and returns when all
        is done. Streams keep their newest frame; ``start()`` may be called
        again. Does nothing if the server is not running."""
    @property
    def running(self) -> bool:
        """Whether the server is serving."""
    @property
    def url(self) -> Optional[str]:
        """The index page, ``"http://127.0.0.1:8080/"``; None when stopped."""
    @property
    def port(self) -> Optional[int]:
        """The TCP port listened on (the one picked, with port 0); None when
        stopped."""
    @property
    def address(self) -> Optional[str]:
        """The address listened on, ``"127.0.0.1:8080"``; None when stopped."""
    @property
    def options(self) -> Dict[str, Any]:
        """The effective options, every default filled in."""
    @property
    def streams(self) -> List[Stream]:
        """Every stream, in the order they were made."""
    def stream(
        self,
        name: str,
        source: Optional[str] = None,
        *,
        overlay: Optional[str] = None,
        overlay_time: str = "utc",
    ) -> Stream:
        """The stream ``name``, made if it does not exist.

        Without ``source`` it is a stream that Python publishes to. With
        one, the stream is fed by a source of the command line's SOURCE
        syntax (``--stream NAME=SOURCE``): ``"dir:./img"``,
        ``"watch:/run/cam.jpg"``, ``"relay:http://cam/video"``,
        ``"exec:rpicam-vid -t 0 --codec mjpeg -o -"``, ``"push"``,
        ``"chart"``, ``"demo"``, started with the server.

        ``overlay`` draws a line of text on every frame (bottom-left): the
        frame's time as ``"%Y-%m-%d %H:%M:%S"`` fields, in ``overlay_time``
        ``"utc"`` or ``"local"``, and the stream's name as ``{stream}``; the
        source's ``#overlay=TEXT`` does the same. Viewers may also ask for a
        variant of any stream by URL: ``?width=320``, ``?height=180``,
        ``?quality=60``.

        Raises:
            ValueError: a bad name or source (the message says why), a
                folder without images, or a source given for a stream that
                exists.
        """
    def chart(
        self,
        name: str,
        *,
        title: Optional[str] = None,
        window: Optional[float] = None,
        ymin: Optional[float] = None,
        ymax: Optional[float] = None,
        size: Optional[Tuple[int, int]] = None,
        theme: Optional[str] = None,
        style: Optional[str] = None,
        colors: Optional[Sequence[str]] = None,
        fps: Optional[float] = None,
    ) -> Chart:
        """A live chart stream: add numbers with ``Chart.add`` and it draws
        them (only when they change, at most ``fps`` times a second).

        Args:
            title: shown above the chart.
            window: seconds of history shown. Default 60.
            ymin: fixed bottom of the y axis; fitted to the data if None.
            ymax: fixed top of the y axis; fitted to the data if None.
            size: ``(width, height)`` in pixels. Default (800, 450).
            theme: ``"dark"`` (default) or ``"light"``.
            style: ``"line"`` (default) or ``"area"``.
            colors: series colours as ``"RRGGBB"``, in order of appearance.
            fps: most frames drawn per second. Default 10.

        Raises:
            ValueError: a bad option (named) or a name in use.
        """
    def __enter__(self) -> Server:
        """Starts the server (if it is not running) and returns it."""
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Stops the server."""

@disjoint_base
class Stream:
    """One stream of a server. Made by ``Server.stream``."""

    @property
    def name(self) -> str:
        """The stream's name, as in ``/stream/NAME``."""
    @property
    def viewers(self) -> int:
        """How many viewers watch now: render only when someone does."""
    @property
    def frames(self) -> int:
        """Frames published so far."""
    @property
    def latest(self) -> Optional[bytes]:
        """The newest frame's JPEG bytes; None before the first."""
    @property
    def url(self) -> Optional[str]:
        """``http://HOST:PORT/stream/NAME``, for an ``<img src=…>``; None
        while the server is stopped."""
    @property
    def snapshot_url(self) -> Optional[str]:
        """``http://HOST:PORT/snapshot/NAME``: the newest frame as one JPEG;
        None while the server is stopped."""
    def publish(self, frame: Any, quality: int = 85, *, bgr: bool = False) -> int:
        """Publishes one frame to every viewer and returns its sequence
        number. Never waits for viewers: a slow viewer skips to the newest
        frame.

        Args:
            frame: one of
                - ``bytes``, ``bytearray`` or a one-dimensional buffer holding
                  a JPEG (passed through untouched) or a PNG, GIF, BMP, WebP
                  or TIFF (converted once);
                - a NumPy ``uint8`` array (or any object with the array
                  interface or the buffer protocol) of shape (H, W) grey,
                  (H, W, 3) RGB or (H, W, 4) RGBA, in any memory order;
                - a Pillow ``Image`` (modes other than RGB, RGBA and L are
                  converted to RGB);
                - a matplotlib ``Figure``, drawn on its Agg canvas.
            quality: JPEG quality of the encoding, 1–100.
            bgr: the array's channels are blue, green, red (OpenCV's order).

        Pixels are encoded once, in Rust, with the GIL released.

        Raises:
            TypeError: an object of another kind.
            ValueError: an array that is not ``uint8`` or not of an image's
                shape (the message names the shape), a corrupt or truncated
                image (the message says why), or a bad ``quality``. The
                stream keeps its previous frame.
        """
    def wait_for_viewer(self, timeout: Optional[float] = None) -> bool:
        """Waits until someone watches (True) or ``timeout`` seconds pass
        (False); None waits as long as it takes. Releases the GIL."""
    def _repr_html_(self) -> str:
        """The stream live in a Jupyter notebook: an ``<img>`` of its URL."""

@final
class Chart(Stream):
    """A stream that draws a live chart of numbers. Made by ``Server.chart``."""

    def add(self, t: Optional[float] = None, **values: float) -> None:
        """Adds one sample: each keyword is a series (``load=0.4,
        temp=61.5``), at time ``t`` (Unix seconds, as ``time.time()``;
        now if None).

        Raises:
            ValueError: no values, a value that is not a finite number, a
                bad series name, or a time too far ahead (named).
        """
    def add_lines(self, text: str) -> int:
        """Adds samples written as lines of ``name=value`` pairs
        (``"load=0.42 temp=61.5"``, ``t=UNIX_SECONDS`` optional), all or
        nothing. Returns how many."""
    @property
    def counts(self) -> Tuple[int, int]:
        """How many series, and samples in all, the chart holds."""
    def publish(self, *args: Any, **kwargs: Any) -> int:
        """Raises RuntimeError: a chart draws its own frames."""
