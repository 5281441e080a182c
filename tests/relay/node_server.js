// rtsp-streaming-server (npm) for vigint's relay tests: publishers push to
// rtsp://127.0.0.1:PUBLISH/NAME, clients play rtsp://127.0.0.1:PLAY/NAME.
//   node node_server.js PUBLISH PLAY RTP_START
// Prints "ready" once both ports listen; runs until killed. The package binds every
// interface; the tests may use loopback only, so TCP listens and UDP binds are pinned to
// 127.0.0.1 here.
const net = require('net');
const dgram = require('dgram');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' && (rest.length === 0 || typeof rest[0] === 'function')) {
    return listen.call(this, port, '127.0.0.1', ...rest);
  }
  return listen.call(this, port, ...rest);
};
const bind = dgram.Socket.prototype.bind;
dgram.Socket.prototype.bind = function (port, ...rest) {
  if (typeof port === 'number' && (rest.length === 0 || typeof rest[0] === 'function')) {
    return bind.call(this, port, '127.0.0.1', ...rest);
  }
  return bind.call(this, port, ...rest);
};

const RtspServer = require('rtsp-streaming-server').default;

const [publish, play, rtpStart] = process.argv.slice(2).map(Number);
const server = new RtspServer({
  serverPort: publish,
  clientPort: play,
  rtpPortStart: rtpStart,
  rtpPortCount: 1000,
});
server.start().then(() => console.log('ready'), (e) => {
  console.error(e);
  process.exit(1);
});
