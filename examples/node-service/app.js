// Example order service on Node.js's http module.
//
// Run `node app.js PORT DATA_DIR` to serve, or `node app.js --self-test PORT DATA_DIR` to start the
// server, send it one order, and exit; the tests run the self-test under the example policy.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const args = process.argv.slice(2);
const selfTest = args[0] === '--self-test';
const port = Number(args[args.length - 2]);
const dataDir = args[args.length - 1];
fs.mkdirSync(dataDir, { recursive: true });

const server = http.createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => { body += chunk; });
  request.on('end', () => {
    const order = JSON.parse(body);
    const stored = path.join(dataDir, `order-${order.id}.json`);
    fs.writeFileSync(stored, JSON.stringify(order));
    response.writeHead(201, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ stored }));
  });
});

server.listen(port, '127.0.0.1', () => {
  if (!selfTest) {
    return;
  }
  const payload = JSON.stringify({ id: 7, item: 'gadget' });
  const request = http.request(
    { host: '127.0.0.1', port, method: 'POST', path: '/orders', headers: { 'Content-Type': 'application/json' } },
    (response) => {
      let answer = '';
      response.on('data', (chunk) => { answer += chunk; });
      response.on('end', () => {
        console.log('node-service stored', JSON.parse(answer).stored);
        server.close();
      });
    },
  );
  request.end(payload);
});
