package dev.pocketbert.demo

import android.content.res.AssetManager
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer

/**
 * The model on LiteRT 2's CompiledModel API, compiled once for one [Accelerator]. Its tensor
 * buffers are made at open, one per signature input and output name (default signature), and
 * reused by every run. [open] throws (LiteRtException) when the accelerator is missing or
 * rejects the graph; [Backends.open] then falls back.
 */
class CompiledBackend private constructor(
    override val name: String,
    private val model: CompiledModel,
    private val inputBuffers: Map<String, TensorBuffer>,
    private val outputBuffers: Map<String, TensorBuffer>,
) : InferenceBackend {

    /** Timed: writing the inputs, the run, reading the outputs (the Interpreter's runSignature copies both too). */
    override fun run(inputs: Map<String, IntArray>): Result {
        val start = System.nanoTime()
        for ((inputName, buffer) in inputBuffers) buffer.writeInt(inputs.getValue(inputName))
        model.run(inputBuffers, outputBuffers)
        val outputs = outputBuffers.mapValues { (_, buffer) -> buffer.readFloat() }
        return Result(outputs, (System.nanoTime() - start) / 1e6)
    }

    override fun close() {
        inputBuffers.values.forEach { it.close() }
        outputBuffers.values.forEach { it.close() }
        model.close()  // also closes the Environment that create() made for it
    }

    companion object {
        fun open(
            assets: AssetManager,
            assetName: String,
            accelerator: Accelerator,
            threads: Int,
            inputNames: List<String>,
            outputNames: List<String>,
        ): CompiledBackend {
            val options = CompiledModel.Options(accelerator)
            if (accelerator == Accelerator.CPU) options.cpuOptions = CompiledModel.CpuOptions(numThreads = threads)
            val model = CompiledModel.create(assets, assetName, options)
            val made = mutableListOf<TensorBuffer>()
            try {
                val inputs = inputNames.associateWith { inputName -> model.createInputBuffer(inputName).also { made += it } }
                val outputs = outputNames.associateWith { outputName -> model.createOutputBuffer(outputName).also { made += it } }
                return CompiledBackend("LiteRT CompiledModel ${accelerator.name}", model, inputs, outputs)
            } catch (e: Throwable) {
                made.forEach { it.close() }
                model.close()
                throw e
            }
        }
    }
}
