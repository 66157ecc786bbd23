namespace Llada.Server;

/// <summary>
/// Admission to the single model: one request generates, at most <c>maxWaiting</c> wait in arrival order, the rest
/// are turned away (the caller answers 429). Keeps a running mean of generation time to suggest a Retry-After.
/// </summary>
public sealed class GenerationQueue(int maxWaiting)
{
    private readonly SemaphoreSlim _slot = new(1, 1);
    private int _admitted; // running + waiting
    private int _running;
    private double _meanSeconds = 1;

    /// <summary>Requests generating now (0 or 1).</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Requests waiting for the model.</summary>
    public int Waiting => Math.Max(0, Volatile.Read(ref _admitted) - Running);

    /// <summary>Requests that may wait.</summary>
    public int Capacity => maxWaiting;

    /// <summary>Seconds a turned-away client should wait: the mean generation time times the requests ahead.</summary>
    public int RetryAfterSeconds => Math.Max(1, (int)Math.Ceiling(Volatile.Read(ref _meanSeconds) * (Waiting + 1)));

    /// <summary>Waits for the model; null when the queue is full. Dispose the lease when the generation ends.</summary>
    public async Task<IDisposable?> EnterAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _admitted) > maxWaiting + 1)
        {
            Interlocked.Decrement(ref _admitted);
            return null;
        }
        try
        {
            await _slot.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _admitted);
            throw;
        }
        Interlocked.Exchange(ref _running, 1);
        return new Lease(this);
    }

    private void Leave(TimeSpan held)
    {
        // Exponential moving average; a race on this estimate is harmless.
        Volatile.Write(ref _meanSeconds, 0.8 * Volatile.Read(ref _meanSeconds) + 0.2 * held.TotalSeconds);
        Interlocked.Exchange(ref _running, 0);
        Interlocked.Decrement(ref _admitted);
        _slot.Release();
    }

    private sealed class Lease(GenerationQueue queue) : IDisposable
    {
        private readonly long _start = System.Diagnostics.Stopwatch.GetTimestamp();
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                queue.Leave(System.Diagnostics.Stopwatch.GetElapsedTime(_start));
        }
    }
}
