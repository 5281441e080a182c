#!/usr/bin/python3
"""An independent RTSP camera for vigint's relay tests and benchmarks: GStreamer's
rtsp-server (gir1.2-gst-rtsp-server-1.0, python3-gi) serving rtsp://127.0.0.1:PORT/cam.

    gst_camera.py PORT [--user U --password P] [--size WxH] [--fps N] [--kbps N]
                  [--source PIPELINE] [--relay URL]

The picture is videotestsrc's ball by default (`--source` replaces the part before the
encoder); `--relay URL` serves another RTSP stream's H.264 unchanged instead (what the
benchmark compares vigint's relay with). With --user, clients must log in (Basic).
Prints "ready" on stdout once it listens; runs until killed. Binds 127.0.0.1 only.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--kbps", type=int, default=400)
    p.add_argument("--source")
    p.add_argument("--relay")
    a = p.parse_args()
    Gst.init(None)
    w, h = a.size.split("x")
    if a.relay:
        launch = (
            f"( rtspsrc location={a.relay} protocols=tcp latency=0 "
            f"! rtph264depay ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
    else:
        src = a.source or f"videotestsrc pattern=ball is-live=true"
        launch = (
            f"( {src} ! video/x-raw,width={w},height={h},framerate={a.fps}/1 "
            f"! x264enc tune=zerolatency bitrate={a.kbps} key-int-max={a.fps} "
            f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string("user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")
        )
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{a.port}", file=sys.stderr)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
