// LLaDA through Microsoft.Extensions.AI: any code written against IChatClient can use a local diffusion model.
//
//   dotnet run --project samples/ChatClientSample -- path/to/model "What is the capital of France?"
using Llada.Serving;
using Microsoft.Extensions.AI;

string model = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("LLADA_MODEL") ?? "models/llada-tiny-instruct";
string question = args.Length > 1 ? args[1] : "Define the word 'harbor'.";

using var generator = TextGenerator.Load(model);
using IChatClient client = new LladaChatClient(generator);

List<ChatMessage> history =
[
    new(ChatRole.System, "Answer in one sentence."),
    new(ChatRole.User, question),
];
var options = new ChatOptions
{
    MaxOutputTokens = 64,
    Temperature = 0,
    // LLaDA's own knobs travel in AdditionalProperties.
    AdditionalProperties = new() { ["steps"] = 64, ["block_length"] = 16 },
};

// Streaming: each block's text arrives once every position of the block is unmasked.
Console.Write("llada> ");
var updates = new List<ChatResponseUpdate>();
await foreach (var update in client.GetStreamingResponseAsync(history, options))
{
    Console.Write(update.Text);
    updates.Add(update);
}
Console.WriteLine();

// The answer joins the history; the next turn sees the whole conversation.
var answer = updates.ToChatResponse();
history.AddMessages(answer);
history.Add(new(ChatRole.User, "Say that again, shorter."));
var second = await client.GetResponseAsync(history, options);
Console.WriteLine($"llada> {second.Text}");
Console.WriteLine($"[{second.Usage?.InputTokenCount} prompt tokens, {second.Usage?.OutputTokenCount} answer tokens]");
