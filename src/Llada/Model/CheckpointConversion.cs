using Llada.Numerics;

namespace Llada.Model;

/// <summary>
/// Rewrites an open checkpoint in another weight type: F32, BF16 or F16 everywhere, or Q8_0 for the Transformer
/// matrices (q/k/v/attn_out, ff_proj/up_proj/ff_out and, unless kept, the LM head) with the embedding and the norm
/// weights left in their stored float type. Tensors are converted while they are written (the source stays mapped),
/// so memory use does not grow with the model.
/// </summary>
public static class CheckpointConversion
{
    /// <summary>
    /// Writes <paramref name="source"/> converted to <paramref name="target"/> into <paramref name="directory"/>, with
    /// config.json, the tokenizer files and generation_config.json. <paramref name="progress"/> receives each stored tensor as it starts.
    /// </summary>
    /// <exception cref="ArgumentException">A matrix that must become Q8_0 has a column count that is not a multiple of 32.</exception>
    public static void Write(LladaCheckpoint source, string directory, DType target, bool keepHeadFloat = false,
        bool overwrite = false, IProgress<NamedTensor>? progress = null, CancellationToken cancellationToken = default)
    {
        var tensors = new List<NamedTensor>();
        // The layout's own names: a LLaDA-MoE checkpoint calls them model.embed_tokens / lm_head.
        string embedding = LladaTensorNames.EmbeddingOf(source.Config), head = LladaTensorNames.LmHeadOf(source.Config);
        foreach (var (name, shape) in LladaTensorNames.Expected(source.Config))
        {
            var matrix = source.Matrix(name);
            bool quantize = target == DType.Q8_0 && shape.Length == 2 && name != embedding && !(keepHeadFloat && name == head);
            DType stored = source.TensorDType(name) switch
            {
                "F32" => DType.F32,
                "F16" => DType.F16,
                _ => DType.BF16, // BF16, or a Q8_0 source's embedding/norm would not be Q8_0; dequantised matrices become BF16
            };
            DType dtype = target == DType.Q8_0 ? stored : target;
            var row = new float[matrix.Cols];
            int cachedRow = -1;
            void Fill(long offset, Span<float> chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                for (int done = 0; done < chunk.Length;)
                {
                    int r = (int)((offset + done) / matrix.Cols), c = (int)((offset + done) % matrix.Cols);
                    if (r != cachedRow) WeightRows.ToSingle(matrix, cachedRow = r, row);
                    int n = Math.Min(matrix.Cols - c, chunk.Length - done);
                    row.AsSpan(c, n).CopyTo(chunk.Slice(done, n));
                    done += n;
                }
            }
            if (quantize)
            {
                var (quants, scales) = NamedTensor.Q8FromGenerator(name, shape[0], shape[1], Fill);
                tensors.Add(quants);
                tensors.Add(scales);
            }
            else tensors.Add(NamedTensor.FromGenerator(name, dtype, shape, Fill));
        }
        CheckpointWriter.Write(directory, source.Config, tensors,
            new CheckpointWriteOptions { Overwrite = overwrite, TokenizerSourceDirectory = source.Directory, GenerationConfigSourceDirectory = source.Directory, Progress = progress }, cancellationToken);
    }
}
