using Llada.Reporting;

namespace Llada.Tests.Reporting;

public sealed class QuantityTests
{
    [Theory]
    [InlineData(1, "token", null, "1 token")]
    [InlineData(0, "token", null, "0 tokens")]
    [InlineData(2, "answer token", null, "2 answer tokens")]
    [InlineData(1, "batch", null, "1 batch")]
    [InlineData(3, "batch", null, "3 batches")]
    [InlineData(4, "forward pass", null, "4 forward passes")]
    [InlineData(2, "box", null, "2 boxes")]
    [InlineData(5, "series", "series", "5 series")]
    [InlineData(-1, "step", null, "-1 steps")]
    public void The_noun_agrees_with_the_count(long count, string singular, string? plural, string expected) =>
        Assert.Equal(expected, Quantity.Of(count, singular, plural));

    [Fact]
    public void A_format_applies_to_the_number_only() =>
        Assert.Equal(12345.ToString("N0") + " tokens", Quantity.Of(12345, "token", format: "N0"));
}
