package dev.pocketbert.demo

import android.content.res.AssetManager
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer

/**
 * The model on LiteRT 2's CompiledModel API, compiled once for one [Accelerator]. Its tensor
 * buffers are made at open, one per signature input and output name, for every signature the
 * app runs (the default one, or each bucket's seq_N: their sizes differ), and reused by every
 * run. [open] throws (LiteRtException) when the accelerator is missing or rejects the graph;
 * [Backends.open] then falls back.
 */
class CompiledBackend private constructor(
    override val name: String,
    private val model: CompiledModel,
    private val buffers: Map<String?, SignatureBuffers>,
) : InferenceBackend {

    /** One signature's buffers, by input and output name. */
    class SignatureBuffers(val inputs: Map<String, TensorBuffer>, val outputs: Map<String, TensorBuffer>)

    /** Timed: writing the inputs, the run, reading the outputs (the Interpreter's runSignature copies both too). */
    override fun run(signature: ModelSignature, inputs: Map<String, IntArray>): Result {
        val key = signature.key
        val made = buffers.getValue(key)
        val start = System.nanoTime()
        for ((inputName, buffer) in made.inputs) buffer.writeInt(inputs.getValue(inputName))
        // no key: the default signature, as before buckets; else the bucket's seq_N
        if (key == null) model.run(made.inputs, made.outputs) else model.run(made.inputs, made.outputs, key)
        val outputs = made.outputs.mapValues { (_, buffer) -> buffer.readFloat() }
        return Result(outputs, (System.nanoTime() - start) / 1e6)
    }

    override fun close() {
        for (signature in buffers.values) {
            signature.inputs.values.forEach { it.close() }
            signature.outputs.values.forEach { it.close() }
        }
        model.close()  // also closes the Environment that create() made for it
    }

    companion object {
        fun open(
            assets: AssetManager,
            assetName: String,
            accelerator: Accelerator,
            threads: Int,
            inputNames: List<String>,
            signatures: List<ModelSignature>,
        ): CompiledBackend {
            val options = CompiledModel.Options(accelerator)
            if (accelerator == Accelerator.CPU) options.cpuOptions = CompiledModel.CpuOptions(numThreads = threads)
            val model = CompiledModel.create(assets, assetName, options)
            val made = mutableListOf<TensorBuffer>()
            try {
                val buffers = signatures.associate { signature ->
                    // LiteRT 2's signature argument: "" is the default signature (what the calls without it use)
                    val key = signature.key ?: ""
                    val inputs = inputNames.associateWith { inputName ->
                        model.createInputBuffer(inputName, key).also { made += it }
                    }
                    val outputs = signature.outputShapes.keys.associateWith { outputName ->
                        model.createOutputBuffer(outputName, key).also { made += it }
                    }
                    signature.key to SignatureBuffers(inputs, outputs)
                }
                return CompiledBackend("LiteRT CompiledModel ${accelerator.name}", model, buffers)
            } catch (e: Throwable) {
                made.forEach { it.close() }
                model.close()
                throw e
            }
        }
    }
}
