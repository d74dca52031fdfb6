"""The embedded synthetic world: a generator that writes the documented dataset format.

``world`` plans and writes a world (posts, web images, accounts and their timelines);
``draw`` renders its pictures, ``vocab`` holds its words, ``pretext`` draws the
everyday-object classes the stand-in backbone was pre-trained on. Nothing outside this
package needs it except :func:`drugjax.data.builders.prepare`, which builds the default
world on first use. ``python -m drugjax.synthetic OUT --preset small`` writes one.
"""
