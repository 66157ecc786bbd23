using Llada.Serving;
using Llada.Tokenization;
using B = Llada.Tests.Serving.ByteTokenizer;

namespace Llada.Tests.Serving;

public sealed class ChatSessionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_second_turn_prompt_is_the_whole_conversation_in_the_chat_template()
    {
        using var g = ServingTestModels.Scripted("Hi there");
        var session = new ChatSession(g, "Be brief.");
        var first = await session.SendAsync("Hello", g.DefaultOptions(16), cancellationToken: Ct);
        Assert.Equal("Hi there", first.Text);
        Assert.Equal(B.Tokenizer().EncodeChat([new("system", "Be brief."), new("user", "Hello")]), first.Prompt.Tokens);

        var second = session.Prepare("And now?", 16);
        // The byte tokenizer re-encodes the answer to the same ids, so the reference is the template over all messages.
        int[] expected = B.Tokenizer().EncodeChat(
            [new("system", "Be brief."), new("user", "Hello"), new("assistant", "Hi there"), new("user", "And now?")]);
        Assert.Equal(expected, second.Tokens);
        Assert.Equal(0, second.DroppedExchanges);
        Assert.Null(second.Notice);
    }

    [Fact]
    public async Task The_answer_stays_in_the_history_up_to_and_including_its_end_of_turn()
    {
        using var g = ServingTestModels.Scripted("ok");
        var session = new ChatSession(g);
        await session.SendAsync("q", g.DefaultOptions(8), cancellationToken: Ct);
        var exchange = Assert.Single(session.History);
        Assert.Equal("ok", exchange.Assistant);
        int[] userTurn = B.Tokenizer().EncodeChat([new("user", "q")])[1..]; // without BOS
        Assert.Equal([.. userTurn, .. B.Bytes("ok"), B.Eot], exchange.Tokens);
    }

    [Fact]
    public async Task An_answer_that_fills_the_canvas_still_ends_its_turn()
    {
        using var g = ServingTestModels.Scripted("abcdefghijk", endTurn: false);
        var session = new ChatSession(g);
        var reply = await session.SendAsync("q", g.DefaultOptions(4), cancellationToken: Ct);
        Assert.Equal("abcd", reply.Text);
        Assert.Equal([.. B.Bytes("abcd"), B.Eot], session.History[0].Tokens[^5..]);
    }

    [Fact]
    public async Task History_is_trimmed_from_the_oldest_exchange_with_a_notice()
    {
        const int gen = 8;
        int userTurn = B.Tokenizer().EncodeChat([new("user", "q1")]).Length - 1; // user turn + assistant header, no BOS
        int exchange = userTurn + 3; // + "ok" + end of turn
        int max = 1 + 3 * exchange + userTurn + gen - 1; // room for the newest message and two old exchanges, not three
        using var g = ServingTestModels.Scripted("ok", maxSequenceLength: max);
        var session = new ChatSession(g);
        for (int i = 1; i <= 3; i++)
        {
            var r = await session.SendAsync($"q{i}", g.DefaultOptions(gen), cancellationToken: Ct);
            Assert.Equal(0, r.Prompt.DroppedExchanges);
        }
        Assert.Equal(exchange, session.History[0].Tokens.Length);
        var prompt = session.Prepare("q4", gen);
        Assert.Equal(1, prompt.DroppedExchanges);
        Assert.Contains("dropped the oldest exchange", prompt.Notice);
        Assert.True(prompt.Tokens.Length + gen <= max);
        Assert.Equal(B.Tokenizer().EncodeChat([new("user", "q2"), new("assistant", "ok"), new("user", "q3"), new("assistant", "ok"), new("user", "q4")]),
            prompt.Tokens);
        Assert.Equal(3, session.History.Count); // Prepare alone changes nothing

        var reply = await session.SendAsync("q4", g.DefaultOptions(gen), cancellationToken: Ct);
        Assert.Equal(1, reply.Prompt.DroppedExchanges);
        Assert.Equal(["q2", "q3", "q4"], session.History.Select(h => h.User));
    }

    [Fact]
    public void A_message_that_cannot_fit_even_alone_is_rejected()
    {
        using var g = ServingTestModels.Scripted("ok", maxSequenceLength: 40);
        var session = new ChatSession(g);
        var ex = Assert.Throws<ArgumentException>(() => session.Prepare(new string('x', 30), 16));
        Assert.Contains("max_sequence_length 40", ex.Message);
    }

    [Fact]
    public async Task Reset_forgets_the_history_and_can_replace_the_system_prompt()
    {
        using var g = ServingTestModels.Scripted("ok");
        var session = new ChatSession(g, "A");
        await session.SendAsync("q", g.DefaultOptions(8), cancellationToken: Ct);
        session.Reset();
        Assert.Empty(session.History);
        Assert.Equal(B.Tokenizer().EncodeChat([new("system", "A"), new("user", "x")]), session.Prepare("x", 8).Tokens);
        session.Reset("B");
        Assert.Equal("B", session.SystemPrompt);
        Assert.Equal(B.Tokenizer().EncodeChat([new("system", "B"), new("user", "x")]), session.Prepare("x", 8).Tokens);
        session.Reset("");
        Assert.Null(session.SystemPrompt);
        Assert.Equal(B.Tokenizer().EncodeChat([new("user", "x")]), session.Prepare("x", 8).Tokens);
    }

    [Fact]
    public async Task A_cancelled_turn_leaves_the_history_unchanged()
    {
        using var g = ServingTestModels.Scripted("ok");
        var session = new ChatSession(g);
        await session.SendAsync("q", g.DefaultOptions(8), cancellationToken: Ct);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => session.SendAsync("again", g.DefaultOptions(8), null, cts.Token));
        Assert.Single(session.History);
    }
}
