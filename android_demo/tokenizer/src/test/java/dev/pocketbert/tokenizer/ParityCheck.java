package dev.pocketbert.tokenizer;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Base64;

/**
 * Checks the Java tokenizer against vectors the Python tokenizer wrote (no JUnit needed, so
 * it runs with a bare JDK): {@code java ParityCheck vocab.txt vectors.tsv}.
 *
 * <p>One vector per line, tab-separated: base64(text), base64(pair) or "-", max length
 * (0 = none), truncation (NONE, LONGEST_FIRST, ONLY_FIRST, ONLY_SECOND), PAD or NOPAD, then
 * the expected ids, type ids and mask as comma-separated numbers, or ERROR. Prints
 * "checked N vectors, M mismatches" and exits 1 if M > 0.
 */
public final class ParityCheck {
    public static void main(String[] args) throws IOException {
        BertTokenizer tokenizer = BertTokenizer.fromVocab(new FileInputStream(args[0]), true);
        Base64.Decoder base64 = Base64.getDecoder();
        int checked = 0;
        int mismatches = 0;
        try (BufferedReader reader = Files.newBufferedReader(Paths.get(args[1]), StandardCharsets.UTF_8)) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.isEmpty()) {
                    continue;
                }
                String[] f = line.split("\t", -1);
                String text = new String(base64.decode(f[0]), StandardCharsets.UTF_8);
                String pair = f[1].equals("-") ? null : new String(base64.decode(f[1]), StandardCharsets.UTF_8);
                int maxLength = Integer.parseInt(f[2]);
                Truncation truncation = Truncation.valueOf(f[3]);
                boolean pad = f[4].equals("PAD");
                String got;
                try {
                    Encoding e = tokenizer.encode(text, pair, maxLength, truncation, pad);
                    got = join(e.inputIds) + "\t" + join(e.tokenTypeIds) + "\t" + join(e.attentionMask);
                } catch (IllegalArgumentException error) {
                    got = "ERROR";
                }
                String expected = f[5].equals("ERROR") ? "ERROR" : f[5] + "\t" + f[6] + "\t" + f[7];
                checked++;
                if (!got.equals(expected)) {
                    mismatches++;
                    if (mismatches <= 10) {
                        System.out.println("MISMATCH " + Arrays.toString(text.codePoints().limit(60).toArray())
                            + " pair=" + (pair != null) + " max=" + maxLength + " " + truncation
                            + "\n  expected " + expected + "\n  got      " + got);
                    }
                }
            }
        }
        System.out.println("checked " + checked + " vectors, " + mismatches + " mismatches");
        System.exit(mismatches == 0 ? 0 : 1);
    }

    private static String join(int[] values) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < values.length; i++) {
            if (i > 0) {
                out.append(',');
            }
            out.append(values[i]);
        }
        return out.toString();
    }
}
