namespace Llada.Numerics;

/// <summary>How many threads the numerics kernels may use. Defaults to all cores.</summary>
public static class Parallelism
{
    private static int _threads = Environment.ProcessorCount;

    /// <summary>Maximum worker threads for kernels (1 = run on the calling thread only).</summary>
    public static int ThreadCount
    {
        get => _threads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _threads = value;
        }
    }
}
