using System.Text.Json;
using Llada.Diffusion;
using Llada.Tokenization;
using Llada.Training.Data;
using Llada.Training.Runs;
using static Llada.Tests.Training.Runs.RunTestSupport;

namespace Llada.Tests.Training.Runs;

public class PreferenceRunTests
{
    internal static string Preferences()
    {
        string path = Path.Combine(Path.GetTempPath(), $"llada-prefs-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path,
        [
            """{"prompt":"2 + 3?","chosen":"5","rejected":"6"}""",
            """{"prompt":"Reverse 'cat'.","chosen":"tac","rejected":"cat","task":"reverse"}""",
            """{"messages":[{"role":"user","content":"Spell 'dog'."}],"chosen":"d o g","rejected":"d g o"}""",
            """{"prompt":"9 - 4?","chosen":"5","rejected":"4"}""",
            """{"prompt":"Hi!","chosen":"Hello!","rejected":"Bye."}""",
        ]);
        return path;
    }

    private static PreferenceRequest Request(string modelDir, string data, string output, bool resume = false, long? stopAfter = null) => new()
    {
        Config = RunConfig.Sft with
        {
            SeqLen = 128, BatchSize = 2, GradAccumulation = 2, Steps = 4, WarmupSteps = 1, EvalInterval = 2, EvalBatches = 2,
            CheckpointInterval = 0, LearningRate = 1e-3, Seed = 3,
        },
        Vrpo = new VrpoOptions { Beta = 0.5, Samples = 2 },
        ModelDirectory = modelDir, Data = [data], Valid = [data], OutputDirectory = output, Resume = resume, StopAfterStep = stopAfter,
    };

    private static float[] Run(PreferenceRequest request)
    {
        using var prepared = RunSetup.Prepare(request, TestContext.Current.CancellationToken);
        prepared.Run.Run(null, TestContext.Current.CancellationToken);
        return prepared.Run.Model.Parameters.ToArray();
    }

    private static List<string> Lines(string dir, string type) =>
        File.ReadLines(Path.Combine(dir, MetricsLog.FileName)).Where(l => JsonDocument.Parse(l).RootElement.GetProperty("type").GetString() == type).ToList();

    [Fact]
    public void Resuming_a_preference_run_is_bit_identical_to_an_uninterrupted_one()
    {
        var (modelDir, start) = SftRunTests.PretrainedModel();
        string data = Preferences(), straight = TempDir(), split = TempDir();
        float[] expected = Run(Request(modelDir, data, straight));
        Assert.NotEqual(start, expected);

        Run(Request(modelDir, data, split, stopAfter: 2));
        using (var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(split, TrainingRun.StateFileName))))
        {
            Assert.Equal("prefer", state.RootElement.GetProperty("kind").GetString());
            Assert.Equal(2, state.RootElement.GetProperty("step").GetInt64());
        }
        float[] actual = Run(Request(modelDir, data, split, resume: true));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"parameter {i}: {expected[i]} vs {actual[i]}");
        Assert.Equal(Lines(straight, "train"), Lines(split, "train"), new LossOnly());
        // Evaluations: DPO loss ln 2 at step 0 (policy = reference, shared draws), accuracy logged.
        var evals = Lines(straight, "eval").Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(Math.Log(2), evals[0].GetProperty("loss").GetDouble(), 12);
        Assert.All(evals, e => Assert.InRange(e.GetProperty("accuracy").GetDouble(), 0, 1));

        var changed = Request(modelDir, data, split, resume: true) with { Vrpo = new VrpoOptions { Beta = 0.5, Samples = 2, Antithetic = false } };
        var ex = Assert.Throws<InvalidDataException>(() => Run(changed));
        Assert.Contains("--resume with different vrpo", ex.Message);
    }

    /// <summary>Train lines match in everything but wall-clock fields.</summary>
    private sealed class LossOnly : IEqualityComparer<string>
    {
        public bool Equals(string? a, string? b)
        {
            var x = JsonDocument.Parse(a!).RootElement;
            var y = JsonDocument.Parse(b!).RootElement;
            return x.GetProperty("step").GetInt64() == y.GetProperty("step").GetInt64() && x.GetProperty("loss").GetDouble() == y.GetProperty("loss").GetDouble()
                && x.GetProperty("grad_norm").GetDouble() == y.GetProperty("grad_norm").GetDouble();
        }

        public int GetHashCode(string s) => 0;
    }

    [Fact]
    public void Pairs_are_encoded_like_sft_responses_with_the_chat_prompt_and_rows_in_chosen_rejected_order()
    {
        var tokenizer = Tokenizer.FromDirectory(SftRunTests.HandmadeTokenizer);
        var pairs = RunSetup.EncodePreferences(tokenizer, [Preferences()], TestContext.Current.CancellationToken);
        Assert.Equal(5, pairs.Count);
        string prompt = tokenizer.Decode(pairs[2].Prompt);
        Assert.Contains("<|start_header_id|>user<|end_header_id|>\n\nSpell 'dog'.", prompt);
        Assert.EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n", prompt);
        int eos = tokenizer.EosTokenId!.Value, eot = tokenizer.EndOfTurnTokenId ?? eos;
        Assert.Equal([.. tokenizer.Encode("d o g"), eot, eos], pairs[2].Chosen);
        Assert.Equal([.. tokenizer.Encode("d g o"), eot, eos], pairs[2].Rejected);

        var source = new PreferenceBatches(pairs, 2, 128, eos, 0, shuffle: false);
        var batch = source.Next();
        Assert.Equal(4, batch.Batch);
        Assert.Equal(pairs.Take(2).Max(p => p.Length), batch.SeqLen);
        var row1 = batch.Tokens.Span.Slice(batch.SeqLen, batch.SeqLen);
        Assert.True(row1[..pairs[0].Prompt.Length].SequenceEqual(pairs[0].Prompt));
        Assert.True(row1.Slice(pairs[0].Prompt.Length, pairs[0].Rejected.Length).SequenceEqual(pairs[0].Rejected));
        Assert.All(row1[(pairs[0].Prompt.Length + pairs[0].Rejected.Length)..].ToArray(), t => Assert.Equal(eos, t));
        Assert.Equal(pairs[0].Prompt.Length, batch.PromptLengths.Span[1]);
    }

    [Theory]
    [InlineData("""{"prompt":"a","chosen":"x"}""", "missing field \"rejected\"")]
    [InlineData("""{"prompt":"a","chosen":"x","rejected":" x "}""", "\"chosen\" and \"rejected\" are the same answer")]
    [InlineData("""{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"chosen":"x","rejected":"y"}""", "the last message is from \"assistant\"")]
    [InlineData("""{"chosen":"x","rejected":"y"}""", "missing field \"prompt\" (or \"messages\")")]
    public void Malformed_preference_records_are_reported_with_file_and_line(string record, string expected)
    {
        string path = Path.Combine(Path.GetTempPath(), $"llada-prefs-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, ["""{"prompt":"ok","chosen":"x","rejected":"y"}""", record]);
        var ex = Assert.Throws<DataFormatException>(() => CorpusReader.ReadPreferences([path], null, TestContext.Current.CancellationToken).ToList());
        Assert.Contains($"{path}:2: ", ex.Message);
        Assert.Contains(expected, ex.Message);
    }
}
