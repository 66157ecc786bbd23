using BenchmarkDotNet.Running;
using Llada.Benchmarks;

if (args.Length > 0 && args[0] == "gflops")
{
    GflopsReport.Run(args[1..]);
    return;
}
if (args.Length > 0 && args[0] == "layers")
{
    LayerProfile.Run(args[1..]);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(GemmBenchmarks).Assembly).Run(args);
