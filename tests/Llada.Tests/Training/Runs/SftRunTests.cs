using Llada.Diffusion;
using Llada.Model;
using Llada.Tokenization;
using Llada.Training;
using Llada.Training.Runs;
using static Llada.Tests.Training.Runs.RunTestSupport;

namespace Llada.Tests.Training.Runs;

public class SftRunTests
{
    internal static readonly string HandmadeTokenizer = Fixture("tokenizers", "handmade");

    /// <summary>A randomly initialised model sized for the handmade tokenizer (273 ids, mask 270, EOS 269), saved as a model directory.</summary>
    internal static (string Directory, float[] Weights) PretrainedModel(int maxSeq = 256)
    {
        var shape = new ModelShape
        {
            DModel = 32, NLayers = 2, NHeads = 4, NKvHeads = 2, MlpHiddenSize = 48, VocabSize = 273, MaxSequenceLength = maxSeq,
            MaskTokenId = 270, EosTokenId = 269,
        };
        var model = new TrainableModel(shape, 1, 8, seed: 5);
        string dir = TempDir();
        CheckpointWriter.Write(dir, shape.ToConfig(), ModelWeights.ToTensors(model),
            new CheckpointWriteOptions { TokenizerSourceDirectory = HandmadeTokenizer });
        return (dir, model.Parameters.ToArray());
    }

    internal static string Dialogues()
    {
        string path = Path.Combine(Path.GetTempPath(), $"llada-sft-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path,
        [
            """{"messages":[{"role":"user","content":"What is 2 + 3?"},{"role":"assistant","content":"5"}]}""",
            """{"messages":[{"role":"user","content":"Spell 'cat'."},{"role":"assistant","content":"c a t"},{"role":"user","content":"And backwards?"},{"role":"assistant","content":"tac"}]}""",
            """{"messages":[{"role":"user","content":"Hello!"},{"role":"assistant","content":"Hello! How can I help?"}]}""",
        ]);
        return path;
    }

    private static RunConfig SftConfig() => RunConfig.Sft with
    {
        SeqLen = 240, BatchSize = 2, Steps = 4, WarmupSteps = 1, EvalInterval = 2, EvalBatches = 1, CheckpointInterval = 0, LearningRate = 1e-3,
    };

    [Fact]
    public void Sft_batches_keep_the_chat_prompt_visible_and_mask_only_the_response()
    {
        var (modelDir, weights) = PretrainedModel();
        string data = Dialogues();
        using var prepared = RunSetup.Prepare(new SftRequest
        {
            Config = SftConfig(), ModelDirectory = modelDir, Data = [data], OutputDirectory = TempDir(),
        }, null, TestContext.Current.CancellationToken);
        // Three dialogues, four answers: the two-answer dialogue became two pairs.
        Assert.Contains("4 pairs", prepared.Notes[0]);
        // The run starts from the pretrained weights.
        Assert.Equal(weights, prepared.Run.Model.Parameters);

        var tokenizer = Tokenizer.FromDirectory(HandmadeTokenizer);
        var source = prepared.Run.Options.Train;
        var objective = new Objective(ObjectiveKind.Sft, new ForwardProcess(270, 11));
        var loss = new LossBatch(source.BatchSize, source.SequenceLength);
        int maskedResponse = 0, rows = 0;
        for (int k = 0; k < 20; k++)
        {
            var batch = source.Next();
            objective.Prepare(batch.Tokens.Span, batch.Batch, batch.SeqLen, batch.PromptLengths.Span, loss);
            var positions = loss.Positions.ToArray();
            for (int r = 0; r < batch.Batch; r++)
            {
                rows++;
                int prompt = batch.PromptLengths.Span[r];
                var x0 = batch.Tokens.Span.Slice(r * batch.SeqLen, batch.SeqLen);
                var input = loss.Input.Slice(r * batch.SeqLen, batch.SeqLen);
                Assert.True(x0[..prompt].SequenceEqual(input[..prompt]), "a prompt token was masked");
                string promptText = tokenizer.Decode(x0[..prompt]);
                Assert.StartsWith("<s>", promptText);
                Assert.Contains("<|start_header_id|>user<|end_header_id|>", promptText);
                Assert.EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n", promptText);
                Assert.Equal(269, x0[^1]); // responses end in (and are padded with) EOS
                foreach (int p in positions.Where(p => p / batch.SeqLen == r))
                {
                    Assert.True(p % batch.SeqLen >= prompt, $"loss at prompt position {p % batch.SeqLen} < {prompt}");
                    Assert.Equal(270, input[p % batch.SeqLen]);
                    maskedResponse++;
                }
            }
        }
        Assert.True(maskedResponse > rows, $"only {maskedResponse} response tokens were masked in {rows} rows");
    }

    [Fact]
    public void Sft_trains_and_writes_a_model_directory_with_the_tokenizer()
    {
        var (modelDir, _) = PretrainedModel();
        string data = Dialogues(), output = TempDir();
        using (var prepared = RunSetup.Prepare(new SftRequest
        {
            Config = SftConfig(), ModelDirectory = modelDir, Data = [data], Valid = [data], OutputDirectory = output,
        }, null, TestContext.Current.CancellationToken))
        {
            var result = prepared.Run.Run(null, TestContext.Current.CancellationToken);
            Assert.True(result.Completed);
            Assert.True(result.LastEvaluation!.IsBound);
        }
        using var checkpoint = LladaCheckpoint.Open(output);
        Assert.NotNull(checkpoint.TokenizerJsonPath);
        Assert.Equal(256, checkpoint.Config.MaxSequenceLength);
    }

    [Fact]
    public void Pairs_longer_than_seq_len_stop_the_run_before_training_unless_skipped()
    {
        var (modelDir, _) = PretrainedModel();
        string data = Dialogues();
        var request = new SftRequest { Config = SftConfig() with { SeqLen = 128 }, ModelDirectory = modelDir, Data = [data], OutputDirectory = TempDir() };
        var ex = Assert.Throws<InvalidDataException>(() => RunSetup.Prepare(request, null, TestContext.Current.CancellationToken));
        Assert.Contains("1 of 4 SFT pairs are longer than seq_len 128 tokens (the longest has 238)", ex.Message);
        Assert.Contains("--skip-long", ex.Message);
        var tooLong = Assert.Throws<InvalidDataException>(() => RunSetup.Prepare(request with { Config = SftConfig() with { SeqLen = 300 } }, null, TestContext.Current.CancellationToken));
        Assert.Contains("exceeds the model's max_sequence_length 256", tooLong.Message);
    }
}
