"""Serve live MJPEG streams over HTTP from Python.

Publish NumPy arrays, Pillow images, matplotlib figures or JPEG bytes, and
every browser shows them live in a plain ``<img>``; ffmpeg, VLC, OpenCV and
Home Assistant read them too::

    import mjpeg_server

    with mjpeg_server.Server(listen="127.0.0.1:8080") as server:
        plot = server.stream("plot")
        print(plot.url)              # <img src="http://127.0.0.1:8080/stream/plot">
        while True:
            if plot.viewers:         # draw only when someone watches
                plot.publish(figure)

The HTTP server, the streams and the JPEG encoder are the Rust core of
mjpeg-server, running on threads of their own: publishing never waits for
viewers, and encoding releases the GIL.
"""

from ._native import Chart, Server, Stream, __version__

__all__ = ["Chart", "Server", "Stream", "__version__"]
