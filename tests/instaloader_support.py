"""Instaloader folders written by Instaloader's own code, offline, for the import tests.

``Instaloader.download_post`` runs as in a real download: it names the files, writes
the pictures (``_1.jpg``, ``_2.jpg``... for a sidecar, ``.mp4`` for videos), the caption
``.txt``, the ``_comments.json`` (``update_comments``) and the ``.json.xz`` metadata
(``save_metadata_json``). Only the two calls that would reach Instagram are replaced:
``context.get_raw`` (the picture and video bytes) returns a JPEG made here, and
``post.get_comments`` returns ``PostComment`` objects built from node dictionaries.
Profiles and hashtags are saved with ``save_metadata_json`` under the names
``download_profiles`` and ``download_hashtag`` use.
"""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path

import instaloader
import requests
from instaloader.structures import PostComment, PostCommentAnswer
from PIL import Image

BASE_TS = 1456876800  # 2016-03-02 00:00 UTC


def jpeg_bytes(color: tuple[int, int, int], size: int = 24) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (size, size), color)
    # A little structure, so that JPEG blocks differ between pictures.
    img.putpixel((1, 1), (255 - color[0], 255 - color[1], 255 - color[2]))
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


class Downloader:
    """An ``Instaloader`` that writes under ``base`` and never touches the network."""

    def __init__(self, base: Path, compress_json: bool = True):
        self.base = Path(base)
        self.loader = instaloader.Instaloader(
            quiet=True, dirname_pattern=str(self.base / "{target}"), download_comments=True, resume_prefix=None,
            compress_json=compress_json)
        ctx = self.loader.context
        ctx.get_raw = self._get_raw
        # Anything else that would reach Instagram fails loudly instead of retrying.
        for name in ("get_json", "graphql_query", "doc_id_graphql_query", "get_iphone_json", "get_page_data"):
            if hasattr(ctx, name):
                setattr(ctx, name, self._no_network)
        self.colors: dict[str, tuple[int, int, int]] = {}  # url -> colour of the JPEG served

    @staticmethod
    def _no_network(*args, **kwargs):
        raise AssertionError(f"the test fixture tried to reach Instagram: {args}")

    def _get_raw(self, url: str) -> requests.Response:
        resp = requests.Response()
        resp.status_code = 200
        if url.endswith(".mp4"):
            resp.raw = io.BytesIO(b"\x00\x00\x00\x18ftypmp42 not a real video")
            resp.headers["Content-Type"] = "video/mp4"
        else:
            resp.raw = io.BytesIO(jpeg_bytes(self.colors.get(url, (90, 90, 90))))
            resp.headers["Content-Type"] = "image/jpeg"
        resp.headers["Last-Modified"] = "Wed, 02 Mar 2016 00:00:00 GMT"
        return resp

    def post(self, target: str, shortcode: str, *, owner: str, minutes: int, caption: str | None = None,
             color=(90, 90, 90), children: list[bool] | None = None, video: bool = False,
             comments: list[tuple[str, list[str]]] = (), likes: int = 3, owner_id: str = "1") -> instaloader.Post:
        """Download one post into folder ``target`` ('#tag' or a username). ``children``:
        a sidecar, one bool per slide (True = a video slide)."""
        url = f"https://cdn.example/{shortcode}.jpg"
        self.colors[url] = color
        node = {
            "__typename": "GraphSidecar" if children else ("GraphVideo" if video else "GraphImage"),
            "shortcode": shortcode, "id": str(sum(map(ord, shortcode)) * 7919),
            "taken_at_timestamp": BASE_TS + 60 * minutes, "display_url": url, "is_video": video,
            "edge_media_to_caption": {"edges": [{"node": {"text": caption}}] if caption is not None else []},
            "owner": {"id": owner_id, "username": owner},
            "edge_media_preview_like": {"count": likes}, "location": {"id": "9", "name": "Somewhere"},
        }
        if video:
            node["video_url"] = f"https://cdn.example/{shortcode}.mp4"
        if children:
            edges = []
            for k, is_video in enumerate(children):
                child_url = f"https://cdn.example/{shortcode}_{k}.jpg"
                self.colors[child_url] = tuple((c + 40 * k) % 256 for c in color)
                child = {"is_video": is_video, "display_url": child_url}
                if is_video:
                    child["video_url"] = f"https://cdn.example/{shortcode}_{k}.mp4"
                edges.append({"node": child})
            node["edge_sidecar_to_children"] = {"edges": edges}
        post = instaloader.Post(self.loader.context, node)
        ctx = self.loader.context
        made = []
        for n, (text, answers) in enumerate(comments):
            commenter = {"id": str(100 + n), "username": f"fan{n}", "is_verified": False, "profile_pic_url": "u"}
            answer_objs = [PostCommentAnswer(id=1000 * (n + 1) + k,
                                             created_at_utc=datetime.fromtimestamp(BASE_TS + k, timezone.utc)
                                             .replace(tzinfo=None),
                                             text=a, owner=instaloader.Profile(ctx, commenter), likes_count=0)
                           for k, a in enumerate(answers)]
            made.append(PostComment(ctx, {"id": 10 * (n + 1), "created_at": BASE_TS + 600 * n, "text": text,
                                          "owner": commenter}, iter(answer_objs), post))
        post.get_comments = lambda: iter(made)
        self.loader.download_post(post, target=target)
        return post

    def profile(self, username: str, *, userid: str = "4242", bio: str = "", followers: int = 100,
                following: int = 10) -> instaloader.Profile:
        """Save a profile's metadata as ``download_profiles`` does: ``<name>/<name>_<id>.json.xz``."""
        prof = instaloader.Profile(self.loader.context, {
            "id": userid, "username": username, "biography": bio, "edge_followed_by": {"count": followers},
            "edge_follow": {"count": following}, "is_private": False, "external_url": None,
            "profile_pic_url_hd": f"https://cdn.example/{username}_pp.jpg",
        })
        folder = self.base / username
        self.loader.save_metadata_json(os.path.join(folder, f"{username}_{userid}"), prof)
        self.loader.download_title_pic(f"https://cdn.example/{username}_pp.jpg", username, "profile_pic", prof)
        return prof

    def hashtag(self, name: str) -> None:
        """The hashtag's own metadata and picture, as ``download_hashtag`` saves them."""
        tag = instaloader.Hashtag(self.loader.context, {"name": name, "profile_pic_url": f"https://cdn.example/h_{name}.jpg"})
        self.loader.save_metadata_json(os.path.join(self.base / f"#{name}", f"#{name}"), tag)
        self.loader.download_title_pic(f"https://cdn.example/h_{name}.jpg", f"#{name}", "profile_pic", None)


DRUG = (220, 30, 30)
PLAIN = (30, 120, 200)


def write_collection(base: Path) -> Downloader:
    """Two hashtag searches and one profile, as ``instaloader "#xans" "#lean" dealer.one`` would write them.

    #xans: 10 posts (every third a drug post, red), one with comments and answers, one a
    sidecar with a video slide, one a video; #lean: 3 posts, one of them also in #xans;
    dealer.one: its profile metadata and 3 posts, one a sidecar.
    """
    d = Downloader(base)
    d.hashtag("xans")
    d.hashtag("lean")
    for i in range(10):
        drug = i % 3 == 0
        d.post("#xans", f"Bx{i:02d}", owner=f"user{i % 4}", minutes=i,
               caption=(f"Plug 🔌 #Xans #bars{i} dm @Dealer.one" if drug else f"gym day #legday #Xans {i}"),
               color=DRUG if drug else PLAIN,
               comments=[("how much?", ["dm me", "cashapp only"]), ("🔥", [])] if i == 0 else [],
               children=[False, True] if i == 1 else None, video=(i == 2))
    for i in range(3):
        shortcode = "Bx03" if i == 0 else f"Bl{i:02d}"  # Bx03 was found by #xans too
        d.post("#lean", shortcode, owner="user3" if i == 0 else f"sipper{i}", minutes=3 if i == 0 else 100 + i,
               caption=("Plug 🔌 #Xans #bars3 dm @Dealer.one" if i == 0 else "purple #lean #sprite"),
               color=DRUG)
    d.profile("dealer.one", bio="dm to order 📦 @Partner_2", followers=1200, following=80)
    for i in range(3):
        d.post("dealer.one", f"Cd{i:02d}", owner="dealer.one", owner_id="4242", minutes=200 + i,
               caption=f"menu in bio #{i}", color=DRUG, children=[False, False] if i == 0 else None)
    return d
