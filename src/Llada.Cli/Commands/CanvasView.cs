using Llada.Diffusion;
using Llada.Tokenization;
using Spectre.Console;

namespace Llada.Cli.Commands;

/// <summary>
/// Draws the answer canvas live while the reverse process unmasks it: committed tokens as text, masks as dim
/// blocks, tokens committed in the latest step highlighted.
/// </summary>
internal sealed class CanvasView(Tokenizer? tokenizer, int maskId)
{
    private const string MaskGlyph = "░";
    private const string EosGlyph = "·";

    /// <summary>Runs <paramref name="generate"/> (which reports steps on its own thread) while drawing the canvas.</summary>
    public T Run<T>(Func<IProgress<ReverseProcessStep>, T> generate)
    {
        T? result = default;
        AnsiConsole.Live(new Markup("[grey]" + MaskGlyph + "[/]"))
            .AutoClear(false)
            .Overflow(VerticalOverflow.Ellipsis)
            .Start(live =>
            {
                result = generate(new Reporter(step =>
                {
                    live.UpdateTarget(new Panel(Render(step)) { Header = new PanelHeader($"step {step.Step + 1}, block {step.Block + 1}") });
                    live.Refresh();
                }));
            });
        return result!;
    }

    private Markup Render(ReverseProcessStep step)
    {
        var fresh = new HashSet<int>(step.Committed.Where(c => c.Row == 0).Select(c => c.Position));
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < step.GenLength; i++)
        {
            int id = step.Canvas[i];
            if (id == maskId)
            {
                sb.Append("[grey]").Append(MaskGlyph).Append("[/]");
                continue;
            }
            if (tokenizer is not null && tokenizer.IsSpecial(id))
            {
                // EOS padding fills most of an instruct model's canvas: show it as one dim glyph, end of turn as ⏎.
                string glyph = id == tokenizer.EndOfTurnTokenId ? "⏎" : id == tokenizer.EosTokenId ? EosGlyph : $"⟨{tokenizer.IdToToken(id)}⟩";
                sb.Append(fresh.Contains(i) ? "[bold yellow]" : "[grey]").Append(Markup.Escape(glyph)).Append("[/]");
                continue;
            }
            string escaped = Markup.Escape(tokenizer?.Decode([id]) ?? $"<{id}>");
            sb.Append(fresh.Contains(i) ? $"[bold yellow]{escaped}[/]" : escaped);
        }
        return new Markup(sb.ToString());
    }

    /// <summary>Reports synchronously on the sampling thread (Progress&lt;T&gt; would post out of order).</summary>
    private sealed class Reporter(Action<ReverseProcessStep> report) : IProgress<ReverseProcessStep>
    {
        public void Report(ReverseProcessStep value) => report(value);
    }
}
