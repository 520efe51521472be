"""A script written for openai-python's ``chat.completions.stream()``, run unchanged but for two lines.

``tests/project/test_porting.py`` runs it as it is, with the ``openai`` package, and
then with only the two lines marked PORT changed to use openai_stream, both
against the same scripted loopback server, and compares what they print.
Iteration, not handlers: openai-python's stream has no ``on()``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

import openai  # PORT: the import line
from pydantic import BaseModel

client = openai.OpenAI(api_key="sk-porting-test", base_url=sys.argv[1], max_retries=0)  # PORT: the client


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: List[Step]
    final_answer: str


class GetWeather(BaseModel):
    """The current weather in a city."""

    city: str
    unit: str


messages: List[Any] = [
    {"role": "system", "content": "You are a helpful math tutor."},
    {"role": "user", "content": "Solve 8x + 7 = -23"},
]

# 1. Structured output, streamed: deltas as they come, the parsed model at the end.
with client.chat.completions.stream(
    model="gpt-4o-mini",
    messages=messages,
    response_format=MathAnswer,
    stream_options={"include_usage": True},
    temperature=0,
) as stream:
    for event in stream:
        if event.type == "content.delta":
            print(event.delta, end="", flush=True)
        elif event.type == "content.done":
            print()
            if event.parsed is not None:
                print("parsed on content.done:", event.parsed.final_answer)
        elif event.type == "refusal.done":
            print("refused:", event.refusal)
    snapshot = stream.current_completion_snapshot
    print("snapshot id:", snapshot.id)

completion = stream.get_final_completion()
message = completion.choices[0].message
if message.parsed is not None:
    print("steps:", [step.output for step in message.parsed.steps])
print("finish:", completion.choices[0].finish_reason)
if completion.usage is not None:
    print("tokens:", completion.usage.total_tokens)
print("as JSON:", json.loads(completion.model_dump_json())["choices"][0]["message"]["content"][:20])

# 2. The assistant message goes back into the conversation; provider extras and headers per request.
messages.append(message)
messages.append({"role": "user", "content": "Thanks! Now in one word?"})
followup = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=messages,
    extra_body={"top_k": 1},
    extra_headers={"X-Trace": "porting"},
    extra_query={"debug": "1"},
)
print("follow-up:", followup.choices[0].message.content)

# 3. A function tool from a pydantic model, called, answered, and the conversation continued.
fast = client.with_options(timeout=30)
tools: List[Any] = [openai.pydantic_function_tool(GetWeather)]
weather_messages: List[Any] = [{"role": "user", "content": "Weather in Paris?"}]
with fast.chat.completions.stream(model="gpt-4o-mini", messages=weather_messages, tools=tools) as tool_stream:
    for tool_event in tool_stream:
        if tool_event.type == "content.delta":
            print(tool_event.delta, end="")
answer = tool_stream.get_final_completion().choices[0].message
calls = answer.tool_calls or []
for call in calls:
    arguments: Dict[str, Any] = json.loads(call.function.arguments)
    print("tool call:", call.function.name, arguments)
weather_messages.append(answer)
for call in calls:
    weather_messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"})
final = fast.chat.completions.create(model="gpt-4o-mini", messages=weather_messages)
print("final:", final.choices[0].message.content)
