package dev.pocketbert.demo

import org.tensorflow.lite.Interpreter
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The model on LiteRT's Interpreter API (org.tensorflow.lite, CPU), the fallback when
 * CompiledModel does not open. Inputs go in as [1, S] int32 by signature name; every output
 * gets a direct buffer of its shape at the signature's length. A bucketed file runs the
 * signature by its key (`runSignature` without one refuses a file of several signatures).
 */
class InterpreterBackend(
    model: ByteBuffer,
    threads: Int,
    useXnnpack: Boolean,
) : InferenceBackend {
    override val name = if (useXnnpack) "LiteRT Interpreter XNNPACK" else "LiteRT Interpreter"
    private val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads).setUseXNNPACK(useXnnpack))

    /** Timed: runSignature alone, as before the CompiledModel backend existed. */
    override fun run(signature: ModelSignature, inputs: Map<String, IntArray>): Result {
        val feeds: Map<String, Any> = inputs.mapValues { (_, ids) -> arrayOf(ids) }  // [1, S] int32
        val buffers = signature.outputShapes.mapValues { (_, shape) ->
            ByteBuffer.allocateDirect(shape.fold(4) { bytes, dim -> bytes * dim }).order(ByteOrder.nativeOrder())
        }
        val key = signature.key
        val start = System.nanoTime()
        if (key == null) interpreter.runSignature(feeds, buffers) else interpreter.runSignature(feeds, buffers, key)
        val millis = (System.nanoTime() - start) / 1e6
        val outputs = buffers.mapValues { (_, buffer) ->
            buffer.rewind()
            FloatArray(buffer.capacity() / 4).also { buffer.asFloatBuffer().get(it) }
        }
        return Result(outputs, millis)
    }

    override fun close() = interpreter.close()
}
