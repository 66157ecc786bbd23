using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Llada.Diffusion;
using Llada.Model;
using Llada.Tokenization;

namespace Llada.Serving;

/// <summary>
/// A mask predictor with its tokenizer, ready to turn prompts into text: runs the reverse process on a background
/// thread, one generation at a time (a model has one set of scratch buffers and all cores to itself), reports the
/// text of each block as soon as the block is final, and stops once every answer has ended.
/// </summary>
public sealed class TextGenerator : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly IDisposable? _owned;

    /// <summary>
    /// Wraps a predictor and tokenizer. <paramref name="owned"/> is disposed with this generator;
    /// <paramref name="samplingDefaults"/> (default <see cref="SamplingDefaults.BuiltIn"/>) shape <see cref="DefaultOptions"/>.
    /// </summary>
    public TextGenerator(IMaskPredictor predictor, Tokenizer tokenizer, int eosTokenId, int? endOfTurnTokenId,
        string modelId, IDisposable? owned = null, SamplingDefaults? samplingDefaults = null)
    {
        SamplingDefaults = samplingDefaults ?? SamplingDefaults.BuiltIn;
        Predictor = predictor ?? throw new ArgumentNullException(nameof(predictor));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        if (tokenizer.VocabSize > predictor.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model's embedding has only {predictor.VocabSize} rows");
        EosTokenId = eosTokenId;
        EndOfTurnTokenId = endOfTurnTokenId;
        ModelId = modelId;
        _owned = owned;
    }

    /// <summary>
    /// Loads a model directory (config.json, safetensors, tokenizer.json, and generation_config.json's sampling
    /// defaults when present); the id defaults to the folder name.
    /// </summary>
    public static TextGenerator Load(string directory, string? modelId = null)
    {
        var defaults = SamplingDefaults.FromDirectory(directory); // a bad file fails before the weights are mapped
        var predictor = MaskPredictor.Load(directory);
        try
        {
            var tokenizer = Tokenizer.FromDirectory(directory);
            return new TextGenerator(predictor, tokenizer, predictor.Config.EosTokenId, tokenizer.EndOfTurnTokenId,
                modelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory))), predictor, defaults);
        }
        catch
        {
            predictor.Dispose();
            throw;
        }
    }

    /// <summary>The model.</summary>
    public IMaskPredictor Predictor { get; }

    /// <summary>Its tokenizer (chat template included).</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>The name clients use for the model.</summary>
    public string ModelId { get; }

    /// <summary>EOS id (config.json's eos_token_id); answers end there.</summary>
    public int EosTokenId { get; }

    /// <summary>End-of-turn id (&lt;|eot_id|&gt;), if the tokenizer has one; answers end there too.</summary>
    public int? EndOfTurnTokenId { get; }

    /// <summary>Prompt + gen_length may not exceed this.</summary>
    public int MaxSequenceLength => Predictor.MaxSequenceLength;

    /// <summary>The model's recommended sampling settings (its generation_config.json over the built-in ones).</summary>
    public SamplingDefaults SamplingDefaults { get; }

    /// <summary>
    /// Default reverse-process options with this model's end tokens, from <see cref="SamplingDefaults"/>: its answer
    /// length unless <paramref name="genLength"/> is given, its block length (the largest that divides the length), its
    /// steps per token, temperature, guidance and remasking.
    /// </summary>
    public GenerationOptions DefaultOptions(int? genLength = null) =>
        SamplingDefaults.ToOptions(EosTokenId, EndOfTurnTokenId, genLength);

    /// <summary>Prompt ids of a conversation in the chat template, ending with the assistant header.</summary>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages) => Tokenizer.EncodeChat(messages, addGenerationPrompt: true);

    /// <summary>Prompt ids of plain text (BOS added when the tokenizer adds it).</summary>
    public int[] EncodeText(string text) => Tokenizer.Encode(text, addSpecialTokens: true);

    /// <summary>
    /// Generates the answers of <paramref name="request"/> on a background thread after the previous generation ends.
    /// <paramref name="onDelta"/> receives each choice's newly final text (called on the sampling thread, in order);
    /// <paramref name="progress"/> every step. Cancelling stops between steps and throws
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public async Task<TextCompletion> CompleteAsync(TextRequest request, Action<TextDelta>? onDelta = null,
        IProgress<ReverseProcessStep>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Options.Validate(Predictor, request.Prompts); // bad requests fail before queueing
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Factory.StartNew(() => Run(request, onDelta, progress, cancellationToken), cancellationToken,
                TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Streams the answers of <paramref name="request"/>: text deltas as blocks become final, then one update carrying
    /// the whole <see cref="TextCompletion"/>. Stopping the enumeration cancels the generation.
    /// </summary>
    public async IAsyncEnumerable<TextUpdate> StreamAsync(TextRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateUnbounded<TextUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var work = CompleteAsync(request, d => channel.Writer.TryWrite(new TextUpdate(d, null)), null, cts.Token);
        _ = work.ContinueWith(t => channel.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        try
        {
            await foreach (var update in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                yield return update;
            yield return new TextUpdate(null, await work.ConfigureAwait(false));
        }
        finally
        {
            await cts.CancelAsync().ConfigureAwait(false);
            try { await work.ConfigureAwait(false); } catch { /* the consumer stopped or the error was already thrown */ }
        }
    }

    private TextCompletion Run(TextRequest request, Action<TextDelta>? onDelta, IProgress<ReverseProcessStep>? progress,
        CancellationToken cancellationToken)
    {
        var options = request.Options;
        int rows = request.Prompts.Count, gen = options.GenLength, blockLength = options.BlockLength, mask = Predictor.MaskTokenId;
        var answers = new AnswerText[rows];
        for (int r = 0; r < rows; r++) answers[r] = new AnswerText(Tokenizer, EosTokenId, EndOfTurnTokenId, request.StopSequences);
        using var allEnded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        int[]? canvas = null;
        int steps = 0;

        var watch = Stopwatch.StartNew();
        var reporter = new SyncProgress(step =>
        {
            progress?.Report(step);
            canvas = step.Canvas;
            steps = step.Step + 1;
            bool all = true;
            for (int r = 0; r < rows; r++)
            {
                var row = step.Canvas.AsSpan(r * gen, gen);
                int final = FinalPrefix(row, blockLength, mask);
                string delta = answers[r].Advance(row[..final], final == gen);
                if (delta.Length > 0) onDelta?.Invoke(new TextDelta(r, delta));
                all &= answers[r].Finished;
            }
            // Committed tokens never change, so once every answer has ended the remaining steps cannot alter the text.
            if (all) allEnded.Cancel();
        });
        try
        {
            var result = new ReverseProcess(Predictor).Generate(request.Prompts, options, reporter, allEnded.Token);
            canvas = result.Sequences.SelectMany(s => s).ToArray();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && allEnded.IsCancellationRequested)
        {
        }
        for (int r = 0; r < rows; r++)
        {
            if (answers[r].Finished) continue;
            string delta = answers[r].Advance(canvas!.AsSpan(r * gen, gen), complete: true);
            if (delta.Length > 0) onDelta?.Invoke(new TextDelta(r, delta));
        }
        watch.Stop();
        var choices = answers.Select((a, i) => new TextChoice(i, a.Text, a.Tokens, a.Finish)).ToArray();
        int promptTokens = request.Prompts.Distinct(ArrayComparer.Instance).Sum(p => p.Length);
        return new TextCompletion(choices, promptTokens, steps, watch.Elapsed);
    }

    /// <summary>Length of the leading run of blocks with no mask left (a block is final once all of it is committed).</summary>
    internal static int FinalPrefix(ReadOnlySpan<int> row, int blockLength, int maskId)
    {
        int end = 0;
        while (end < row.Length && !row.Slice(end, blockLength).Contains(maskId)) end += blockLength;
        return end;
    }

    /// <summary>Disposes the owned model.</summary>
    public void Dispose()
    {
        _owned?.Dispose();
        _gate.Dispose();
    }

    /// <summary>Reports synchronously on the sampling thread (Progress&lt;T&gt; would post out of order).</summary>
    private sealed class SyncProgress(Action<ReverseProcessStep> report) : IProgress<ReverseProcessStep>
    {
        public void Report(ReverseProcessStep value) => report(value);
    }

    private sealed class ArrayComparer : IEqualityComparer<int[]>
    {
        public static readonly ArrayComparer Instance = new();
        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(int[] obj)
        {
            var h = new HashCode();
            h.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(obj.AsSpan()));
            return h.ToHashCode();
        }
    }
}
