// The mjpeg-server player: <mjpeg-stream src="http://HOST:PORT/stream/NAME">.
//
//   <script type="module" src="http://HOST:PORT/player.js"></script>
//   <mjpeg-stream src="http://HOST:PORT/stream/cam"></mjpeg-stream>
//
// Every element of a page that shows a stream of one server shares one
// WebSocket to it (/ws), so a page can play more streams than the six
// HTTP/1.1 connections a browser opens to a server. Frames are drawn into
// a <canvas> as they come; an element out of view, or in a hidden tab,
// unsubscribes, so the server stops sending it frames. Where the socket
// cannot be had (an old server, a page of another origin the server does
// not allow), the element shows a plain <img> of the stream instead.
//
// Attributes: src (the stream's URL, as for an <img>; its ?token= is used
// for the socket too), fps (a cap on the rate), width, height and quality
// (a variant: the frames made smaller or at another JPEG quality by the
// server, once for every viewer of the same variant; also read from the
// src URL's query), ws (the socket's URL, if
// not /ws of the stream's server), stream (the stream's name, if the URL
// is not /stream/NAME), transport="img" (always the <img>), stall-after
// (ms without a frame before a "stall" event; 3000).
//
// Events: "frame" (detail: seq, timestamp, age), "stall" (detail: ms since
// the last frame), "error" (detail: status, reason). Properties: frames,
// lastFrameAge (ms since the frame shown was published, by this machine's
// clock), transport ("websocket", "img" or null), reconnecting (also an
// attribute, set while the connection is lost and tried again; the
// element then shows its last frame dimmed, labelled "reconnecting…").

const HEADER = 20;
const VARIANT = ['width', 'height', 'quality'];

/// What a subscription is known by: the stream's name ('' for the
/// server's first) and the variant asked for.
function keyOf(stream, variant) {
  return JSON.stringify([stream, ...VARIANT.map((k) => (variant[k] == null ? null : Number(variant[k])))]);
}
const FIRST_DELAY = 500;
const MAX_DELAY = 30000;

/// One WebSocket to one server, shared by every element that shows one
/// of its streams.
class Connection {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.timer = null;
    this.delay = FIRST_DELAY;
    this.everOpened = false;
    // A subscription's key (keyOf) -> elements.
    this.wanted = new Map();
    // A subscription's key -> { stream, variant }.
    this.specs = new Map();
    // A frame message's stream id -> the names it was subscribed under.
    this.ids = new Map();
  }

  add(el, key, spec) {
    let els = this.wanted.get(key);
    if (!els) {
      els = new Set();
      this.wanted.set(key, els);
      this.specs.set(key, spec);
    }
    els.add(el);
    // Subscribed again with every element, so that the rate fits them all.
    this.subscribe(key);
    if (!this.ws && !this.timer) this.open();
  }

  remove(el, key) {
    const els = this.wanted.get(key);
    if (!els || !els.delete(el)) return;
    if (els.size === 0) {
      this.send(this.request('unsubscribe', key));
      this.wanted.delete(key);
      this.specs.delete(key);
      for (const keys of this.ids.values()) keys.delete(key);
    } else {
      this.subscribe(key);
    }
  }

  subscribe(key) {
    const els = this.wanted.get(key);
    if (!els) return;
    // The fastest rate any of the elements wants; no cap if one has none.
    let fps = 0;
    for (const el of els) {
      const f = parseFloat(el.getAttribute('fps'));
      fps = f > 0 ? Math.max(fps, f) : Infinity;
    }
    const msg = this.request('subscribe', key);
    if (Number.isFinite(fps)) msg.fps = fps;
    this.send(msg);
  }

  request(op, key) {
    const { stream, variant } = this.specs.get(key);
    const msg = { op };
    if (stream !== '') msg.stream = stream;
    for (const k of VARIANT) if (variant[k] != null) msg[k] = Number(variant[k]);
    return msg;
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  open() {
    this.timer = null;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.closed();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.everOpened = true;
      for (const key of this.wanted.keys()) this.subscribe(key);
      for (const els of this.wanted.values()) for (const el of els) el._online();
    };
    ws.onmessage = (ev) => this.message(ev.data);
    ws.onclose = () => {
      if (this.ws === ws) this.closed();
    };
  }

  closed() {
    this.ws = null;
    this.ids.clear();
    for (const els of this.wanted.values()) {
      for (const el of els) el._offline(!this.everOpened);
    }
    // Nobody to reconnect for: the next element to come opens it.
    if (this.wanted.size === 0 || this.timer) return;
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
    this.timer = setTimeout(() => this.open(), delay);
  }

  message(data) {
    if (typeof data === 'string') {
      let m;
      try {
        m = JSON.parse(data);
      } catch (e) {
        return;
      }
      // A working server: the next loss starts the back-off afresh.
      this.delay = FIRST_DELAY;
      const key = keyOf(m.stream == null ? '' : String(m.stream), m);
      if (m.op === 'subscribed') {
        let keys = this.ids.get(m.id);
        if (!keys) this.ids.set(m.id, (keys = new Set()));
        keys.add(key);
      } else if (m.op === 'error') {
        for (const el of this.wanted.get(key) || []) el._error(m.status, m.reason);
      }
      return;
    }
    if (!(data instanceof ArrayBuffer) || data.byteLength <= HEADER) return;
    const view = new DataView(data);
    const keys = this.ids.get(view.getUint32(0));
    if (!keys) return;
    const seq = Number(view.getBigUint64(4));
    const timestamp = Number(view.getBigUint64(12)) / 1000;
    const blob = new Blob([new Uint8Array(data, HEADER)], { type: 'image/jpeg' });
    for (const key of keys) {
      for (const el of this.wanted.get(key) || []) el._frame(blob, seq, timestamp);
    }
  }
}

const connections = new Map();

function connection(url) {
  let c = connections.get(url);
  if (!c) connections.set(url, (c = new Connection(url)));
  return c;
}

/// The socket's URL, the stream's name and variant, and the <img> URL for
/// an element.
function target(el) {
  const src = new URL(el.getAttribute('src'), document.baseURI);
  const token = src.searchParams.get('token');
  let stream = el.getAttribute('stream');
  if (stream === null) {
    const m = /^\/stream(?:\/([^/]+))?$/.exec(src.pathname);
    stream = m && m[1] ? decodeURIComponent(m[1]) : '';
  }
  // The attributes win over the URL's query; the <img> gets them too.
  const variant = {};
  for (const k of VARIANT) {
    const v = el.hasAttribute(k) ? el.getAttribute(k) : src.searchParams.get(k);
    if (v === null || v === '') continue;
    if (!/^[0-9]+$/.test(v.trim())) throw new Error(`${k}="${v}" is not a whole number`);
    variant[k] = Number(v);
    src.searchParams.set(k, String(variant[k]));
  }
  let ws;
  if (el.hasAttribute('ws')) {
    ws = new URL(el.getAttribute('ws'), document.baseURI);
  } else {
    ws = new URL('/ws', src);
  }
  if (ws.protocol === 'http:') ws.protocol = 'ws:';
  if (ws.protocol === 'https:') ws.protocol = 'wss:';
  if (token !== null && !ws.searchParams.has('token')) ws.searchParams.set('token', token);
  return { url: ws.href, key: keyOf(stream, variant), spec: { stream, variant }, src: src.href };
}

let styled = false;

function addStyle() {
  if (styled) return;
  styled = true;
  const style = document.createElement('style');
  // :where() keeps these the weakest rules of the page.
  style.textContent =
    ':where(mjpeg-stream){display:inline-block;line-height:0;position:relative}' +
    ':where(mjpeg-stream)>:where(canvas,img){display:block;max-width:100%;height:auto}' +
    ':where(mjpeg-stream[reconnecting])>:where(canvas,img){opacity:.5}' +
    ':where(mjpeg-stream[reconnecting])::after{content:"reconnecting\\2026";position:absolute;left:4px;top:4px;' +
    'font:12px/1.4 sans-serif;color:#fff;background:rgba(0,0,0,.6);padding:0 4px;border-radius:2px}';
  document.head.append(style);
}

class MjpegStream extends HTMLElement {
  static observedAttributes = ['src', 'fps', 'ws', 'stream', 'transport', ...VARIANT];

  constructor() {
    super();
    this.frames = 0;
    this._visible = false;
    this._playing = null; // { conn, key, src } while wanted
    this._mode = null; // 'websocket' | 'img'
    this._canvas = null;
    this._img = null;
    this._pending = null;
    this._decoding = false;
    this._shownTs = null;
    this._lastArrival = 0;
    this._stalled = false;
    this._imgDelay = FIRST_DELAY;
    this._imgTimer = null;
    this._onVisibility = () => this._update();
  }

  get transport() {
    return this._mode;
  }

  get reconnecting() {
    return this.hasAttribute('reconnecting');
  }

  get lastFrameAge() {
    return this._shownTs === null ? null : Date.now() - this._shownTs;
  }

  connectedCallback() {
    addStyle();
    this._observer = new IntersectionObserver((entries) => {
      this._visible = entries[entries.length - 1].isIntersecting;
      this._update();
    });
    this._observer.observe(this);
    document.addEventListener('visibilitychange', this._onVisibility);
    this._stallCheck = setInterval(() => this._checkStall(), 250);
  }

  disconnectedCallback() {
    this._observer.disconnect();
    document.removeEventListener('visibilitychange', this._onVisibility);
    clearInterval(this._stallCheck);
    this._visible = false;
    this._stop();
  }

  attributeChangedCallback() {
    if (!this._playing) return;
    this._stop();
    this._update();
  }

  _update() {
    const wanted =
      this.isConnected && this._visible && document.visibilityState !== 'hidden' && this.hasAttribute('src');
    if (wanted && !this._playing) this._start();
    if (!wanted && this._playing) this._stop();
  }

  _start() {
    let t;
    try {
      t = target(this);
    } catch (e) {
      this._error(0, `bad src or variant: ${e.message}`);
      return;
    }
    this._lastArrival = performance.now();
    this._stalled = false;
    if (this.getAttribute('transport') === 'img' || typeof WebSocket === 'undefined') {
      this._playing = { conn: null, key: t.key, src: t.src };
      this._showImg();
      return;
    }
    const conn = connection(t.url);
    this._playing = { conn, key: t.key, src: t.src };
    // A socket that has failed and never worked: the <img> until it does.
    if (!conn.everOpened && conn.timer !== null) this._showImg();
    else this._showCanvas();
    conn.add(this, t.key, t.spec);
  }

  _stop() {
    const p = this._playing;
    this._playing = null;
    if (p && p.conn) p.conn.remove(this, p.key);
    this._pending = null;
    clearTimeout(this._imgTimer);
    this.removeAttribute('reconnecting');
    // Ends the <img>'s HTTP stream (and the server's viewer).
    if (this._img) this._img.removeAttribute('src');
  }

  // The socket opened: draw its frames, and drop the <img> if it stood in.
  _online() {
    this.removeAttribute('reconnecting');
    if (this._mode === 'img') this._showCanvas();
  }

  // The socket closed: say so while it reconnects. If it never opened,
  // stand in with an <img>, whose own load or failure then says how it
  // goes (the socket may be refused for good while the <img> plays).
  _offline(neverOpened) {
    if (!this._playing || this._mode === 'img') return;
    if (neverOpened) this._showImg();
    else this.setAttribute('reconnecting', '');
  }

  _showCanvas() {
    this._mode = 'websocket';
    clearTimeout(this._imgTimer);
    if (this._img) {
      this._img.removeAttribute('src');
      this._img.remove();
      this._img = null;
    }
    if (!this._canvas) {
      this._canvas = document.createElement('canvas');
      this._canvas.width = 0;
      this._canvas.height = 0;
      this.append(this._canvas);
    }
  }

  _showImg() {
    this._mode = 'img';
    if (this._canvas) {
      this._canvas.remove();
      this._canvas = null;
    }
    if (!this._img) {
      const img = document.createElement('img');
      img.alt = this.getAttribute('alt') || '';
      img.onload = () => {
        this._imgDelay = FIRST_DELAY;
        this.removeAttribute('reconnecting');
        this._shown(null, Date.now());
      };
      img.onerror = () => {
        if (!this._playing || this._mode !== 'img') return;
        this.setAttribute('reconnecting', '');
        this._error(0, 'the stream could not be loaded');
        // Retried with back-off, as the socket is.
        const delay = this._imgDelay;
        this._imgDelay = Math.min(this._imgDelay * 2, MAX_DELAY);
        this._imgTimer = setTimeout(() => this._loadImg(), delay);
      };
      this._img = img;
      this.append(img);
    }
    this._loadImg();
  }

  _loadImg() {
    if (!this._playing || !this._img) return;
    const url = new URL(this._playing.src);
    // A new URL each time, so that the browser asks again.
    url.searchParams.set('_', String(Date.now()));
    this._img.src = url.href;
  }

  _frame(blob, seq, timestamp) {
    if (!this._playing || this._mode !== 'websocket') return;
    this._lastArrival = performance.now();
    this._stalled = false;
    // Newest only: a frame that arrives while one is decoded replaces
    // the one waiting, if any.
    if (this._decoding) {
      this._pending = { blob, seq, timestamp };
      return;
    }
    this._draw(blob, seq, timestamp);
  }

  // createImageBitmap, not WebCodecs' ImageDecoder: the decoder was about
  // 2 ms sooner in Chromium 156, but Chromium's memory grew by 330 MiB
  // over 275 frames of 1280×720 with it (the memory test, then of one such
  // stream for 10 s; now in tests/player_measures.rs).
  async _draw(blob, seq, timestamp) {
    this._decoding = true;
    try {
      const bitmap = await createImageBitmap(blob);
      try {
        const c = this._canvas;
        if (c && this._mode === 'websocket') {
          if (c.width !== bitmap.width || c.height !== bitmap.height) {
            c.width = bitmap.width;
            c.height = bitmap.height;
          }
          c.getContext('2d').drawImage(bitmap, 0, 0);
          this._shown(seq, timestamp);
        }
      } finally {
        // The decoded pixels are freed now, not whenever GC runs.
        bitmap.close();
      }
    } catch (e) {
      this._error(0, `a frame could not be decoded: ${e.message}`);
    } finally {
      this._decoding = false;
      const next = this._pending;
      this._pending = null;
      if (next && this._playing && this._mode === 'websocket') this._draw(next.blob, next.seq, next.timestamp);
    }
  }

  _shown(seq, timestamp) {
    this.frames += 1;
    this._shownTs = timestamp;
    this._lastArrival = performance.now();
    this._stalled = false;
    this.dispatchEvent(new CustomEvent('frame', { detail: { seq, timestamp, age: Date.now() - timestamp } }));
  }

  _checkStall() {
    if (!this._playing || this._stalled || this._mode === 'img') return;
    const after = parseFloat(this.getAttribute('stall-after')) || 3000;
    const since = performance.now() - this._lastArrival;
    if (since > after) {
      this._stalled = true;
      this.dispatchEvent(new CustomEvent('stall', { detail: { since } }));
    }
  }

  _error(status, reason) {
    this.dispatchEvent(new CustomEvent('error', { detail: { status, reason } }));
  }
}

if (!customElements.get('mjpeg-stream')) customElements.define('mjpeg-stream', MjpegStream);

export { MjpegStream };
