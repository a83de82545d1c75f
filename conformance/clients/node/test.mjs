// The official `openai` Node package against Switchyard's gateway and its `dev` provider.
//
// The server's address comes from SWITCHYARD_URL; `cargo xtask clients` starts a server
// on a fresh database and sets it. Setup signs up a user with plain `fetch`, creates an
// organization and mints the API keys the tests use.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';

import OpenAI from 'openai';

const BASE_URL = (process.env.SWITCHYARD_URL ?? '').replace(/\/+$/, '');
if (!BASE_URL) {
  console.error('SWITCHYARD_URL is not set (run through `cargo xtask clients`)');
  process.exit(2);
}

const GREETING = 'hello there';
const ANSWER = `You said: ${GREETING}`;
const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city.',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const WEATHER_REQUEST = 'Please call get_weather with {"city": "Paris"} for me.';

const tokens = (text) => Math.ceil(text.length / 4);
const user = (text) => [{ role: 'user', content: text }];

async function api(method, path, body, token) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const response = await fetch(BASE_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {} };
}

async function expect201(what, promise) {
  const { status, body } = await promise;
  assert.equal(status, 201, `${what}: ${JSON.stringify(body)}`);
  return body;
}

// No retries: a failure shows as it happened.
const clientFor = (apiKey) => new OpenAI({ apiKey, baseURL: `${BASE_URL}/v1`, maxRetries: 0, timeout: 30_000 });

let client;
let knowledgeKey;
let limitedKey;

before(async () => {
  const tag = randomBytes(6).toString('hex');
  const password = randomBytes(24).toString('base64url');
  const { access_token: token } = await expect201(
    'register',
    api('POST', '/v1/auth/register', {
      email: `openai-node-${tag}@example.com`,
      password,
      display_name: 'OpenAI Node suite',
    }),
  );
  const { id: orgId } = await expect201('create org', api('POST', '/v1/orgs', { name: `openai-node-${tag}` }, token));
  const mint = async (name, scopes, extra = {}) => {
    const { key } = await expect201(
      `mint key ${name}`,
      api('POST', '/v1/api-keys', { name, scopes, org_id: orgId, ...extra }, token),
    );
    assert.ok(key.startsWith('sy_live_'), key);
    return key;
  };
  client = clientFor(await mint('chat', ['chat']));
  knowledgeKey = await mint('knowledge only', ['knowledge']);
  limitedKey = await mint('one request a minute', ['chat'], { rpm_limit: 1 });
});

describe('chat completions', () => {
  test('non-stream', async () => {
    const completion = await client.chat.completions.create({ model: 'default', messages: user(GREETING) });
    assert.equal(completion.object, 'chat.completion');
    assert.ok(completion.id);
    assert.equal(completion.choices.length, 1);
    const [choice] = completion.choices;
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, ANSWER);
    assert.equal(completion.usage.prompt_tokens, 1 + tokens(GREETING));
    assert.equal(completion.usage.completion_tokens, tokens(ANSWER));
    assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
  });

  test('stream with usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'default',
      messages: user(GREETING),
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.length >= 4);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const last = chunks.at(-1);
    const content = chunks.slice(0, -1);
    assert.equal(content.map((c) => c.choices[0].delta.content ?? '').join(''), ANSWER);
    assert.equal(content.at(-1).choices[0].finish_reason, 'stop');
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, 1 + tokens(GREETING));
    assert.equal(last.usage.completion_tokens, tokens(ANSWER));
  });

  test('stream helper accumulates the completion', async () => {
    const runner = client.chat.completions.stream({ model: 'dev', messages: user(GREETING) });
    let text = '';
    runner.on('content', (delta) => {
      text += delta;
    });
    const final = await runner.finalChatCompletion();
    assert.equal(text, ANSWER);
    assert.equal(final.choices[0].message.content, ANSWER);
    assert.equal(final.choices[0].finish_reason, 'stop');
  });

  test('tool-call round trip', async () => {
    const messages = user(WEATHER_REQUEST);
    const first = await client.chat.completions.create({ model: 'default', messages, tools: [WEATHER_TOOL] });
    const [choice] = first.choices;
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    const [call] = choice.message.tool_calls;
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

    messages.push(choice.message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' });
    const second = await client.chat.completions.create({ model: 'default', messages, tools: [WEATHER_TOOL] });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.content, 'Tool results: get_weather: sunny, 21C');
  });

  test('streamed tool call', async () => {
    const stream = await client.chat.completions.create({
      model: 'default',
      messages: user(WEATHER_REQUEST),
      tools: [WEATHER_TOOL],
      stream: true,
    });
    let name = '';
    let args = '';
    let finish;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        for (const delta of choice.delta.tool_calls ?? []) {
          assert.equal(delta.index, 0);
          name += delta.function?.name ?? '';
          args += delta.function?.arguments ?? '';
        }
        finish = choice.finish_reason ?? finish;
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
  });
});

describe('models', () => {
  test('list', async () => {
    const ids = [];
    for await (const model of client.models.list()) {
      assert.equal(model.object, 'model');
      ids.push(model.id);
    }
    assert.ok(ids.includes('default') && ids.includes('dev'), JSON.stringify(ids));
  });

  test('retrieve', async () => {
    const model = await client.models.retrieve('dev');
    assert.equal(model.id, 'dev');
    assert.equal(model.object, 'model');
  });
});

describe('embeddings', () => {
  const norm = (v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

  test('string and list, decoded from base64 by the SDK', async () => {
    const one = await client.embeddings.create({ model: 'default', input: 'hello world' });
    assert.equal(one.data.length, 1);
    assert.equal(one.data[0].embedding.length, 64);
    assert.ok(Math.abs(norm(one.data[0].embedding) - 1) < 1e-5);
    const many = await client.embeddings.create({ model: 'default', input: ['hello world', 'goodbye'] });
    assert.deepEqual(
      many.data.map((d) => d.index),
      [0, 1],
    );
    assert.deepEqual(many.data[0].embedding, one.data[0].embedding, 'deterministic');
  });

  test('float format', async () => {
    const floats = await client.embeddings.create({ model: 'dev', input: 'hello world', encoding_format: 'float' });
    const decoded = await client.embeddings.create({ model: 'dev', input: 'hello world' });
    assert.equal(floats.data[0].embedding.length, 64);
    floats.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - decoded.data[0].embedding[i]) < 1e-6));
  });

  test('token ids', async () => {
    const tokens = await client.embeddings.create({ model: 'default', input: [[15339, 1917], [15339]] });
    assert.deepEqual(
      tokens.data.map((d) => d.index),
      [0, 1],
    );
    assert.equal(tokens.usage.prompt_tokens, 3);
  });
});

describe('errors', () => {
  const check = (err, cls, status) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, status);
    assert.equal(typeof err.error?.message, 'string');
    assert.ok(err.error.message);
    assert.equal(typeof err.code, 'string');
    assert.equal(err.code, err.error.code);
    assert.equal(err.message, `${status} ${err.error.message}`);
    assert.ok(err.requestID, 'the X-Request-Id header reaches the SDK');
    return true;
  };

  test('bad key is an AuthenticationError', async () => {
    await assert.rejects(
      clientFor('sy_live_not-a-real-key').chat.completions.create({ model: 'default', messages: user('hi') }),
      (err) => check(err, OpenAI.AuthenticationError, 401),
    );
  });

  test('unknown model is a NotFoundError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: user('hi') }),
      (err) => check(err, OpenAI.NotFoundError, 404),
    );
  });

  test('wrong scope is a PermissionDeniedError', async () => {
    await assert.rejects(
      clientFor(knowledgeKey).chat.completions.create({ model: 'default', messages: user('hi') }),
      (err) => check(err, OpenAI.PermissionDeniedError, 403),
    );
  });

  test('second request over the rpm limit is a RateLimitError', async () => {
    const limited = clientFor(limitedKey);
    await limited.chat.completions.create({ model: 'default', messages: user('one') });
    await assert.rejects(limited.chat.completions.create({ model: 'default', messages: user('two') }), (err) =>
      check(err, OpenAI.RateLimitError, 429),
    );
  });

  test('empty messages is a BadRequestError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'default', messages: [] }),
      (err) => check(err, OpenAI.BadRequestError, 400),
    );
  });
});
