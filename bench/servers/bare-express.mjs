// The baseline: express 5 hello-world with nothing in front of it.
import express from 'express';

const app = express();
app.get('/hello', (_req, res) => {
  res.json({ status: 'ok' });
});
app.post('/echo', express.json(), (req, res) => {
  res.json({ result: req.body });
});
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`LISTENING http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
