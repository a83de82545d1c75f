"""The official `openai` Python package against Switchyard's gateway and its `dev` provider.

The `dev` provider is deterministic: it answers `You said: <last user text>`, calls an
offered tool the last user message names (arguments: the first JSON object in the text),
answers `Tool results: <name>: <content>; ...` after tool messages, counts
`ceil(chars / 4)` tokens per text plus one per prompt message, and embeds text as 64
numbers of unit length.
"""

import base64
import json
import math
import os
import re
import struct

import openai
import pytest

GREETING = "hello there"
ANSWER = f"You said: {GREETING}"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_REQUEST = 'Please call get_weather with {"city": "Paris"} for me.'


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# Chat completions


@pytest.mark.parametrize("model", ["default", "dev"])
def test_chat_completion(client, model):
    completion = client.chat.completions.create(model=model, messages=user(GREETING))
    assert completion.object == "chat.completion"
    assert completion.id
    assert isinstance(completion.created, int)
    assert completion.model
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == ANSWER
    assert not choice.message.tool_calls
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 1 + tokens(GREETING)
    assert usage.completion_tokens == tokens(ANSWER)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_completion_with_a_system_message_and_content_parts(client):
    completion = client.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": GREETING}]},
        ],
    )
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage.prompt_tokens == 1 + tokens("You are terse.") + 1 + tokens(GREETING)


def test_common_request_options_are_accepted(client):
    # What applications built on the SDK routinely send; none of it may be refused.
    completion = client.chat.completions.create(
        model="default",
        messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": GREETING, "name": "ada"},
        ],
        temperature=0.2,
        top_p=1,
        seed=7,
        stop=["\n\n"],
        user="end-user-1",
        presence_penalty=0,
        frequency_penalty=0,
        response_format={"type": "text"},
        metadata={"suite": "clients"},
        store=False,
    )
    assert completion.choices[0].message.content == ANSWER


def test_max_completion_tokens_cuts_the_answer(client):
    completion = client.chat.completions.create(
        model="default", messages=user(GREETING), max_completion_tokens=2
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == ANSWER[:8]
    assert completion.usage.completion_tokens == 2


def test_stream_with_usage(client):
    whole = client.chat.completions.create(model="default", messages=user(GREETING))
    chunks = list(
        client.chat.completions.create(
            model="default",
            messages=user(GREETING),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len(chunks) >= 4, chunks
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1, "every chunk of a stream has the same id"
    first = chunks[0]
    assert first.choices[0].delta.role == "assistant"

    *content_chunks, last = chunks
    text = "".join(chunk.choices[0].delta.content or "" for chunk in content_chunks)
    assert text == whole.choices[0].message.content == ANSWER
    finish_reasons = [chunk.choices[0].finish_reason for chunk in content_chunks]
    assert finish_reasons[-1] == "stop"
    assert all(reason is None for reason in finish_reasons[:-1])
    assert all(chunk.usage is None for chunk in content_chunks)

    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.total_tokens == whole.usage.total_tokens


def test_stream_without_usage(client):
    chunks = list(client.chat.completions.create(model="dev", messages=user(GREETING), stream=True))
    assert chunks
    assert all(chunk.choices for chunk in chunks), "no usage-only chunk unless include_usage"
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == ANSWER


SILENT_ANSWER = "Switchyard counts the tokens this upstream never reports."


@pytest.fixture(scope="session")
def silent_model() -> str:
    """The route over an upstream that never reports usage (llama.cpp's server
    omits it in streams); `cargo xtask clients` configures it."""
    model = os.environ.get("SWITCHYARD_SILENT_MODEL")
    if not model:
        pytest.skip("the server was started elsewhere (--url) and has no route without usage")
    return model


def test_stream_usage_from_an_upstream_that_omits_it(client, silent_model):
    whole = client.chat.completions.create(model=silent_model, messages=user(GREETING))
    assert whole.choices[0].message.content == SILENT_ANSWER
    # Counted by Switchyard: at least a token a word, at most one a character.
    words = len(SILENT_ANSWER.split())
    assert words <= whole.usage.completion_tokens <= len(SILENT_ANSWER), whole.usage
    assert whole.usage.prompt_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model=silent_model,
            messages=user(GREETING),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *content_chunks, last = chunks
    text = "".join(chunk.choices[0].delta.content or "" for chunk in content_chunks)
    assert text == SILENT_ANSWER
    assert all(chunk.usage is None for chunk in content_chunks)
    assert last.choices == [] and last.usage is not None, "the usage chunk the client asked for"
    assert last.id == content_chunks[0].id
    assert last.usage == whole.usage

    plain = list(client.chat.completions.create(model=silent_model, messages=user(GREETING), stream=True))
    assert all(chunk.usage is None and chunk.choices for chunk in plain)


def test_fields_that_change_the_price_are_refused(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=user(GREETING), service_tier="priority")
    check_error(caught.value, 400)
    assert caught.value.code == "gateway.unsupported_parameter"
    assert caught.value.param == "service_tier"


def test_stream_with_an_unknown_model_fails_before_streaming(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=user(GREETING), stream=True)
    check_error(caught.value, 404)


def test_stream_helper_accumulates_the_completion(client):
    with client.chat.completions.stream(
        model="default", messages=user(GREETING), stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == ANSWER
    assert final.choices[0].message.content == ANSWER
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens


# Tool calls


def test_tool_call_round_trip(client):
    messages = user(WEATHER_REQUEST)
    first = client.chat.completions.create(model="default", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    # Send the assistant message back as the SDK returned it, as the OpenAI docs do.
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    second = client.chat.completions.create(model="default", messages=messages, tools=[WEATHER_TOOL])
    answer = second.choices[0]
    assert answer.finish_reason == "stop"
    assert answer.message.content == "Tool results: get_weather: sunny, 21C"
    assert not answer.message.tool_calls


def test_tool_choice_none_answers_in_text(client):
    completion = client.chat.completions.create(
        model="default", messages=user(WEATHER_REQUEST), tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == f"You said: {WEATHER_REQUEST}"


def test_streamed_tool_call(client):
    calls: dict[int, dict] = {}
    finish_reason = None
    for chunk in client.chat.completions.create(
        model="default", messages=user(WEATHER_REQUEST), tools=[WEATHER_TOOL], stream=True
    ):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
            finish_reason = choice.finish_reason or finish_reason
    assert finish_reason == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


# Embeddings


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_embedding_of_a_string(client):
    # The SDK asks for base64 itself and decodes it to floats.
    result = client.embeddings.create(model="default", input="hello world")
    assert result.object == "list"
    assert len(result.data) == 1
    item = result.data[0]
    assert item.object == "embedding"
    assert item.index == 0
    assert len(item.embedding) == 64
    assert norm(item.embedding) == pytest.approx(1.0, abs=1e-5)
    assert result.usage.prompt_tokens == tokens("hello world")
    assert result.usage.total_tokens == result.usage.prompt_tokens
    again = client.embeddings.create(model="default", input="hello world")
    assert again.data[0].embedding == item.embedding, "embeddings are deterministic"


def test_embeddings_of_a_list(client):
    texts = ["hello world", "the weather in Paris"]
    result = client.embeddings.create(model="dev", input=texts, encoding_format="float")
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 64 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    single = client.embeddings.create(model="dev", input=texts[1], encoding_format="float")
    assert single.data[0].embedding == pytest.approx(result.data[1].embedding)
    assert result.usage.prompt_tokens == sum(tokens(text) for text in texts)


def test_embedding_as_base64(client):
    floats = client.embeddings.create(model="default", input="hello world", encoding_format="float")
    encoded = client.embeddings.create(model="default", input="hello world", encoding_format="base64")
    raw = encoded.data[0].embedding
    assert isinstance(raw, str), "with encoding_format=base64 the SDK hands back the string"
    decoded = base64.b64decode(raw)
    assert len(decoded) == 64 * 4
    vector = struct.unpack("<64f", decoded)
    assert list(vector) == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_embedding_dimensions(client):
    result = client.embeddings.create(model="default", input="hello world", dimensions=8)
    assert len(result.data[0].embedding) == 8
    assert norm(result.data[0].embedding) == pytest.approx(1.0, abs=1e-5)


def test_embedding_of_token_ids(client):
    # OpenAI accepts `input` as token IDs (an array of integers, or of such arrays);
    # some libraries send their text that way.
    result = client.embeddings.create(model="default", input=[[15339, 1917], [15339]], encoding_format="float")
    assert [item.index for item in result.data] == [0, 1]
    assert result.usage.prompt_tokens == 3
    single = client.embeddings.create(model="default", input=[15339, 1917], encoding_format="float")
    assert single.data[0].embedding == result.data[0].embedding


# Models


def test_models_list(client):
    models = list(client.models.list())
    ids = [model.id for model in models]
    assert "default" in ids and "dev" in ids, ids
    for model in models:
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert isinstance(model.owned_by, str) and model.owned_by


def test_models_retrieve(client):
    model = client.models.retrieve("dev")
    assert model.id == "dev"
    assert model.object == "model"
    assert isinstance(model.owned_by, str) and model.owned_by


# Errors: the SDK's classes, and the server's envelope as the SDK exposes it.


def check_error(err: openai.APIStatusError, status: int) -> None:
    assert err.status_code == status
    body = err.body
    # The SDK keeps the `error` object of the envelope as `body`.
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("type"), str) and body["type"], body
    assert err.code == body["code"]
    assert err.type == body["type"]
    assert body["message"] in err.message
    assert err.message == f"Error code: {status} - {body['message']}"
    assert err.request_id, "the X-Request-Id header reaches the SDK"
    if body.get("request_id") is not None:
        assert err.request_id == body["request_id"]


def test_bad_key_is_an_authentication_error(client_for):
    with pytest.raises(openai.AuthenticationError) as caught:
        client_for("sy_live_not-a-real-key").chat.completions.create(model="default", messages=user("hi"))
    check_error(caught.value, 401)


def test_wrong_scope_is_a_permission_error(client_for, credentials):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client_for(credentials.knowledge_key).chat.completions.create(model="default", messages=user("hi"))
    check_error(caught.value, 403)


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=user("hi"))
    check_error(caught.value, 404)


def test_retrieving_an_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    check_error(caught.value, 404)


def test_second_request_over_the_rpm_limit_is_rate_limited(client_for, credentials):
    limited = client_for(credentials.limited_key)
    first = limited.chat.completions.create(model="default", messages=user("one"))
    assert first.choices[0].message.content == "You said: one"
    with pytest.raises(openai.RateLimitError) as caught:
        limited.chat.completions.create(model="default", messages=user("two"))
    check_error(caught.value, 429)
    # The SDK waits as long as Retry-After says before it retries.
    assert caught.value.response.headers.get("retry-after", "").isdigit()


def test_limited_keys_see_openai_rate_limit_headers(client_for, credentials):
    metered = client_for(credentials.metered_key)
    raw = metered.chat.completions.with_raw_response.create(model="default", messages=user("count me"))
    assert raw.parse().choices[0].message.content == "You said: count me"
    headers = raw.headers
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "99"
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(headers["x-ratelimit-remaining-tokens"]) < 100000
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        assert re.fullmatch(r"\d+s", headers[name]), (name, headers[name])


def test_empty_messages_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=[])
    check_error(caught.value, 400)


def test_bad_request_names_the_param(client):
    # OpenAI answers `messages=[]` with `param: "messages"`.
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=[])
    assert caught.value.param == "messages"
