using Llada.Serving;
using B = Llada.Tests.Serving.ByteTokenizer;

namespace Llada.Tests.Serving;

public sealed class TextGeneratorTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static TextRequest Request(TextGenerator g, int gen, int block, string[]? stops = null, int rows = 1) => new()
    {
        Prompts = Enumerable.Range(0, rows).Select(_ => g.EncodeChat([new("user", "hi")])).ToArray(),
        Options = g.DefaultOptions(gen) with { BlockLength = block },
        StopSequences = stops ?? [],
    };

    [Fact]
    public async Task Answer_is_cut_at_end_of_turn_and_counts_only_the_answer_tokens()
    {
        using var g = ServingTestModels.Scripted([.. B.Bytes("Hi there"), B.Eot, .. B.Bytes("junk")], 512, out _);
        var c = await g.CompleteAsync(Request(g, 16, 16), cancellationToken: Ct);
        Assert.Equal("Hi there", c.Choices[0].Text);
        Assert.Equal(B.Bytes("Hi there"), c.Choices[0].Tokens);
        Assert.Equal(CompletionFinish.EndOfText, c.Choices[0].Finish);
        Assert.Equal(g.EncodeChat([new("user", "hi")]).Length, c.PromptTokens);
        Assert.Equal(8, c.CompletionTokens);
    }

    [Fact]
    public async Task Each_block_is_reported_once_all_its_positions_are_committed()
    {
        using var g = ServingTestModels.Scripted("abcdefghij", endTurn: true);
        var deltas = new List<string>();
        var canvases = new List<int[]>();
        var c = await g.CompleteAsync(Request(g, 16, 4), d => deltas.Add(d.Text),
            new SyncProgress(s => canvases.Add(s.Canvas)), Ct);
        Assert.Equal(["abcd", "efgh", "ij"], deltas);
        Assert.Equal("abcdefghij", c.Choices[0].Text);
        // One token per step: block 3 (holding the end of turn) is final after 12 steps, then generation stops.
        Assert.Equal(12, c.Steps);
        Assert.Equal(12, canvases.Count);
        Assert.Contains(B.Mask, canvases[^1]); // the last block was never sampled
    }

    [Fact]
    public async Task A_utf8_character_split_across_blocks_is_held_back_until_complete()
    {
        using var g = ServingTestModels.Scripted("abcé!", endTurn: true); // é = C3 A9: byte 3 ends block 0
        var deltas = new List<string>();
        var c = await g.CompleteAsync(Request(g, 8, 4), d => deltas.Add(d.Text), cancellationToken: Ct);
        Assert.Equal(["abc", "é!"], deltas);
        Assert.Equal("abcé!", c.Choices[0].Text);
    }

    [Fact]
    public async Task Stop_sequences_cut_the_text_and_are_never_streamed()
    {
        using var g = ServingTestModels.Scripted("one, two. three", endTurn: true);
        var deltas = new List<string>();
        var c = await g.CompleteAsync(Request(g, 16, 2, stops: [". t", "xyz"]), d => deltas.Add(d.Text), cancellationToken: Ct);
        Assert.Equal("one, two", c.Choices[0].Text);
        Assert.Equal(CompletionFinish.StopSequence, c.Choices[0].Finish);
        Assert.Equal(B.Bytes("one, two"), c.Choices[0].Tokens);
        Assert.Equal("one, two", string.Concat(deltas));
        Assert.True(c.Steps < 16);
    }

    [Fact]
    public async Task A_full_canvas_without_an_end_token_finishes_with_length()
    {
        using var g = ServingTestModels.Scripted("0123456789", endTurn: false);
        var c = await g.CompleteAsync(Request(g, 8, 4), cancellationToken: Ct);
        Assert.Equal("01234567", c.Choices[0].Text);
        Assert.Equal(CompletionFinish.Length, c.Choices[0].Finish);
    }

    [Fact]
    public async Task Several_choices_run_as_one_batch_and_count_a_shared_prompt_once()
    {
        using var g = ServingTestModels.Scripted([.. B.Bytes("ok"), B.Eot], 512, out var predictor);
        var c = await g.CompleteAsync(Request(g, 4, 4, rows: 3), cancellationToken: Ct);
        Assert.All(c.Choices, ch => Assert.Equal("ok", ch.Text));
        Assert.Equal([0, 1, 2], c.Choices.Select(ch => ch.Index));
        Assert.Equal(g.EncodeChat([new("user", "hi")]).Length, c.PromptTokens);
        Assert.Equal(6, c.CompletionTokens);
        Assert.Equal(4, predictor.ForwardCalls); // one batched forward pass per step
    }

    [Fact]
    public async Task Streaming_yields_the_deltas_then_the_completion()
    {
        using var g = ServingTestModels.Scripted("abcdefgh", endTurn: true);
        var updates = new List<TextUpdate>();
        await foreach (var u in g.StreamAsync(Request(g, 12, 4), Ct)) updates.Add(u);
        Assert.Equal(["abcd", "efgh"], updates.Where(u => u.Delta is not null).Select(u => u.Delta!.Value.Text));
        Assert.Equal("abcdefgh", updates[^1].Completion!.Choices[0].Text);
    }

    [Fact]
    public async Task Cancellation_stops_the_generation_between_steps()
    {
        using var g = ServingTestModels.Scripted("abcdefghijklmnop", endTurn: true);
        using var cts = new CancellationTokenSource();
        int steps = 0;
        var progress = new SyncProgress(_ => { if (++steps == 3) cts.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => g.CompleteAsync(Request(g, 32, 4), null, progress, cts.Token));
        Assert.Equal(3, steps);
    }

    [Fact]
    public async Task Generations_are_serialised()
    {
        using var g = ServingTestModels.Scripted([.. B.Bytes("abcd"), B.Eot], 512, out var predictor);
        int running = 0, most = 0;
        var progress = new SyncProgress(_ =>
        {
            int now = Interlocked.Increment(ref running);
            most = Math.Max(most, now);
            Thread.Sleep(2);
            Interlocked.Decrement(ref running);
        });
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => g.CompleteAsync(Request(g, 8, 4), null, progress, Ct)));
        Assert.Equal(1, most);
    }
}

internal sealed class SyncProgress(Action<Llada.Diffusion.ReverseProcessStep> report) : IProgress<Llada.Diffusion.ReverseProcessStep>
{
    public void Report(Llada.Diffusion.ReverseProcessStep value) => report(value);
}
