using Llada.Numerics;

namespace Llada.Tests;

public class DTypeTests
{
    [Theory]
    [InlineData(1.0f)]
    [InlineData(-2.5f)]
    [InlineData(0.15625f)]
    public void BF16_round_trips_values_it_can_represent(float v)
    {
        Assert.Equal(v, DTypes.BF16ToSingle(DTypes.SingleToBF16(v)));
    }
}
